"""History: every finished run recorded in a local SQLite database, and trends read back from it.

The database (default ``reports/history.sqlite``, beside the run folders) has
two tables: ``runs`` (one row per run: suite, run id, UTC time, the git
commit of the working directory if any, machine, folder, gate verdict and the
suite's gates) and ``values`` (tidy: run, model, backend, input, field,
value: every numeric summary field).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from evalkit.errors import UserError
from evalkit.faults import fault_point
from evalkit.record.summary import DEFAULT_PROTOCOL, SUMMARY_COLUMNS, TEXT_COLUMNS, number, run_key
from evalkit.record.vocabulary import SPEED_ALIASES

HISTORY_DB = "history.sqlite"
TEXT_FIELDS = set(TEXT_COLUMNS)
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created_utc TEXT NOT NULL, git_commit TEXT,
    machine TEXT, run_dir TEXT, gates_passed INTEGER, gates_json TEXT
);
CREATE TABLE IF NOT EXISTS "values" (
    run_id TEXT NOT NULL REFERENCES runs(run_id), model TEXT, backend TEXT, input TEXT,
    field TEXT NOT NULL, value REAL, protocol TEXT
);
CREATE INDEX IF NOT EXISTS values_by_field ON "values"(field, run_id);
"""


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the git repository around ``cwd`` (with '-dirty' when it has changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


BUSY_SECONDS_ENV = "EVALKIT_HISTORY_BUSY_SECONDS"
BUSY_SECONDS = 60.0  # how long a writer waits for another process's transaction on the database to end


class HistoryBusy(UserError):
    """Another process held the history database longer than the busy timeout: busy, not damaged."""


def busy_seconds() -> float:
    """The busy timeout: EVALKIT_HISTORY_BUSY_SECONDS, else BUSY_SECONDS."""
    value = os.environ.get(BUSY_SECONDS_ENV)
    try:
        return float(value) if value else BUSY_SECONDS
    except ValueError:
        raise UserError(f"{BUSY_SECONDS_ENV}={value!r}: expected a number of seconds") from None


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the database (not a damaged file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
    return "locked" in str(exc) or "busy" in str(exc)


def _busy_error(db: Path, run_dir: Path | None) -> HistoryBusy:
    later = (f"record the run later with: evalkit history --record {run_dir}" if run_dir is not None
             else "try again when it is done")
    return HistoryBusy(f"{db}: busy: another process held a write transaction on it for more than "
                       f"{busy_seconds():g} s (the database is not damaged); {later}")


def connect(db: Path, run_dir: Path | None = None, timeout: float | None = None) -> sqlite3.Connection:
    """The history database (made when absent), waiting up to ``timeout`` seconds (default ``busy_seconds()``)
    for another process's transaction; HistoryBusy after that (``run_dir``: the run the message says to record
    later)."""
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db, timeout=busy_seconds() if timeout is None else timeout)
    try:
        con.executescript(SCHEMA)
        con.execute("SELECT run_id, suite, created_utc, git_commit, gates_passed, gates_json FROM runs LIMIT 1")
        if "protocol" not in {row[1] for row in con.execute('PRAGMA table_info("values")')}:
            con.execute('ALTER TABLE "values" ADD COLUMN protocol TEXT')  # databases from before protocols
    except sqlite3.OperationalError as exc:
        con.close()
        if _is_busy(exc):
            raise _busy_error(db, run_dir) from None
        raise UserError(f"{db}: not an evalkit history database (expected an SQLite file with its runs table: "
                        f"{exc})") from None
    except sqlite3.DatabaseError as exc:
        con.close()
        raise UserError(f"{db}: not an evalkit history database (expected an SQLite file with its runs table: "
                        f"{exc})") from None
    return con


TRY_SECONDS = 0.25  # one try's wait (SQLite's own busy handler) before the next, within busy_seconds()


def record_run(db: Path, record, run_dir: Path, log=None) -> None:
    """Add a finished run (idempotent: a run id is stored once, its values replaced) in one transaction.

    While another process holds the database, it tries again (``log`` says once that it waits) for up to
    ``busy_seconds()``; then HistoryBusy, which says the database is busy, not damaged, and how to record the
    run later (nothing is written: the run folder's run.json keeps all the entry needs)."""
    deadline, told = time.monotonic() + busy_seconds(), False
    commit = git_commit()
    while True:
        try:
            con = connect(db, run_dir, timeout=TRY_SECONDS)
            try:
                with con:
                    _insert_run(con, record, run_dir, commit)
                    fault_point("history")  # inside the transaction: a signal here leaves the database as it was
                return
            finally:
                con.close()
        except (HistoryBusy, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise _busy_error(db, run_dir) from None
            if log is not None and not told:
                log(f"{db}: busy (another process is writing it); waiting up to {busy_seconds():g} s ...")
                told = True


def _insert_run(con: sqlite3.Connection, record, run_dir: Path, commit: str | None) -> None:
    gates = record.suite.definition.get("gates", [])
    con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
        record.run_id, record.suite.name, record.created_utc, commit,
        record.machine.get("cpu"), str(run_dir), None if record.gates_passed is None else int(record.gates_passed),
        json.dumps(gates)))
    con.execute('DELETE FROM "values" WHERE run_id = ?', (record.run_id,))
    rows = []
    for entry in record.runs:
        for field in SUMMARY_COLUMNS:
            if field in TEXT_FIELDS:
                continue
            value = entry.summary.cell(field)
            if value is not None:
                rows.append((record.run_id, entry.model, entry.backend, entry.input, field, float(value),
                             entry.protocol))
    con.executemany('INSERT INTO "values" (run_id, model, backend, input, field, value, protocol) '
                    'VALUES (?, ?, ?, ?, ?, ?, ?)', rows)


def runs(db: Path, suite: str | None = None) -> list[dict]:
    """Recorded runs in time order (oldest first)."""
    with connect(db) as con:
        con.row_factory = sqlite3.Row
        query = "SELECT * FROM runs" + (" WHERE suite = ?" if suite else "") + " ORDER BY created_utc, run_id"
        return [dict(r) for r in con.execute(query, (suite,) if suite else ())]


def values(db: Path, field: str, suite: str | None = None) -> list[dict]:
    """One field's values over the runs, in time order (runs recorded under an old speed name included)."""
    field = SPEED_ALIASES.get(field, field)
    names = [field] + [old for old, new in SPEED_ALIASES.items() if new == field]
    with connect(db) as con:
        con.row_factory = sqlite3.Row
        query = ('SELECT r.run_id, r.suite, r.created_utc, r.git_commit, v.model, v.backend, v.input, '
                 'COALESCE(v.protocol, ?) AS protocol, v.value '
                 f'FROM "values" v JOIN runs r USING (run_id) WHERE v.field IN ({", ".join("?" * len(names))})'
                 + (" AND r.suite = ?" if suite else "") + " ORDER BY r.created_utc, r.run_id")
        return [dict(r) for r in con.execute(query, (DEFAULT_PROTOCOL, *names, suite) if suite
                                             else (DEFAULT_PROTOCOL, *names))]


DEFAULT_FIELDS = ("psnr_mean", "ssim_mean", "sync_offset_frames", "throughput_fps")


def history_table(db: Path, suite: str | None, field: str) -> "pd.DataFrame":
    """Runs (rows, in time order) x model/backend/input[/protocol] (columns) of one field; without ``suite``,
    each column is prefixed with its suite so that series of different suites are never joined."""
    import pandas as pd

    frame = pd.DataFrame(values(db, field, suite))
    if frame.empty:
        return frame
    frame["run"] = frame["created_utc"].str.slice(0, 19) + " " + frame["run_id"]
    frame["what"] = frame["model"] + "/" + frame["backend"] + "/" + frame["input"] + frame["protocol"].map(
        lambda p: "" if p == DEFAULT_PROTOCOL else f"/{p}")
    if suite is None:
        frame["what"] = frame["suite"] + ": " + frame["what"]
    table = frame.pivot_table(index="run", columns="what", values="value", aggfunc="first", sort=False)
    return table.loc[list(dict.fromkeys(frame["run"]))]


def gate_limits(recorded: list[dict], field: str) -> list[tuple[str, float, bool]]:
    """(op, value, abs) of the latest run's absolute gates on ``field``: the lines drawn on its trend."""
    gates = json.loads(recorded[-1]["gates_json"]) if recorded and recorded[-1]["gates_json"] else []
    field = SPEED_ALIASES.get(field, field)
    return [(g["op"], g["value"], bool(g.get("abs"))) for g in gates
            if SPEED_ALIASES.get(g["field"], g["field"]) == field and g.get("op")]


def write_history_html(db: Path, suite: str | None, fields: list[str], out: Path) -> Path:
    """Per suite (``suite`` alone, or every suite recorded), a trend per field with a line per
    model/backend/input and that suite's own absolute gate limits; runs are numbered on the axis and in the table
    (run id and git commit)."""
    from evalkit.record.io import write_text_atomic
    from evalkit.report import plots
    from evalkit.report.templating import render

    recorded = runs(db, suite)
    suites = []
    for name in dict.fromkeys(r["suite"] for r in recorded):
        own = [r for r in recorded if r["suite"] == name]
        number_of = {r["run_id"]: i + 1 for i, r in enumerate(own)}
        figures = []
        for field in fields:
            table = history_table(db, name, field)
            if table.empty:
                continue
            ticks = [f"#{number_of[run.rsplit(' ', 1)[1]]}" for run in table.index]
            figures.append({"field": field, "png": plots.trend(table, f"{name}: {field}", gate_limits(own, field),
                                                               ticks)})
        suites.append({"name": name, "runs": [dict(r, number=number_of[r["run_id"]]) for r in own],
                       "figures": figures})
    html = render("history.html.j2", strict=False, suite=suite or "all suites", runs=recorded, suites=suites)
    return write_text_atomic(Path(out), html)
