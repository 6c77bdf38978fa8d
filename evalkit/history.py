"""History: every finished run recorded in a local SQLite database, and trends read back from it.

The database (default ``reports/history.sqlite``, beside the run folders) has
two tables: ``runs`` (one row per run: suite, run id, UTC time, the git
commit of the working directory if any, machine, folder, gate verdict and the
suite's gates) and ``values`` (tidy: run, model, backend, input, field,
value: every numeric summary field).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from evalkit.record import SUMMARY_COLUMNS, number

HISTORY_DB = "history.sqlite"
TEXT_FIELDS = {"model", "backend", "input", "kind", "precision", "status", "reason", "parity_against"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created_utc TEXT NOT NULL, git_commit TEXT,
    machine TEXT, run_dir TEXT, gates_passed INTEGER, gates_json TEXT
);
CREATE TABLE IF NOT EXISTS "values" (
    run_id TEXT NOT NULL REFERENCES runs(run_id), model TEXT, backend TEXT, input TEXT,
    field TEXT NOT NULL, value REAL
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


def connect(db: Path) -> sqlite3.Connection:
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.executescript(SCHEMA)
    return con


def record_run(db: Path, record: dict, run_dir: Path) -> None:
    """Add a finished run (idempotent: a run id is stored once)."""
    gates = record["suite"]["definition"].get("gates", [])
    with connect(db) as con:
        con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
            record["run_id"], record["suite"]["name"], record["created_utc"], git_commit(),
            record["machine"].get("cpu"), str(run_dir), None if "gates_passed" not in record else int(record["gates_passed"]),
            json.dumps(gates)))
        con.execute('DELETE FROM "values" WHERE run_id = ?', (record["run_id"],))
        rows = []
        for entry in record["runs"]:
            for field in SUMMARY_COLUMNS:
                if field in TEXT_FIELDS:
                    continue
                value = number(entry["summary"].get(field))
                if value is not None:
                    rows.append((record["run_id"], entry["model"], entry["backend"], entry["input"], field, value))
        con.executemany('INSERT INTO "values" VALUES (?, ?, ?, ?, ?, ?)', rows)


def runs(db: Path, suite: str | None = None) -> list[dict]:
    """Recorded runs in time order (oldest first)."""
    with connect(db) as con:
        con.row_factory = sqlite3.Row
        query = "SELECT * FROM runs" + (" WHERE suite = ?" if suite else "") + " ORDER BY created_utc, run_id"
        return [dict(r) for r in con.execute(query, (suite,) if suite else ())]


def values(db: Path, field: str, suite: str | None = None) -> list[dict]:
    """One field's values over the runs, in time order."""
    with connect(db) as con:
        con.row_factory = sqlite3.Row
        query = ('SELECT r.run_id, r.created_utc, r.git_commit, v.model, v.backend, v.input, v.value '
                 'FROM "values" v JOIN runs r USING (run_id) WHERE v.field = ?' + (" AND r.suite = ?" if suite else "")
                 + " ORDER BY r.created_utc, r.run_id")
        return [dict(r) for r in con.execute(query, (field, suite) if suite else (field,))]


DEFAULT_FIELDS = ("psnr_mean", "ssim_mean", "sync_offset_frames", "fps")


def history_table(db: Path, suite: str | None, field: str) -> "pd.DataFrame":
    """Runs (rows, in time order) x model/backend/input (columns) of one field."""
    import pandas as pd

    frame = pd.DataFrame(values(db, field, suite))
    if frame.empty:
        return frame
    frame["run"] = frame["created_utc"].str.slice(0, 19) + " " + frame["run_id"]
    frame["what"] = frame["model"] + "/" + frame["backend"] + "/" + frame["input"]
    table = frame.pivot_table(index="run", columns="what", values="value", aggfunc="first", sort=False)
    return table.loc[list(dict.fromkeys(frame["run"]))]


def gate_limits(recorded: list[dict], field: str) -> list[tuple[str, float, bool]]:
    """(op, value, abs) of the latest run's absolute gates on ``field``: the lines drawn on its trend."""
    gates = json.loads(recorded[-1]["gates_json"]) if recorded and recorded[-1]["gates_json"] else []
    return [(g["op"], g["value"], bool(g.get("abs"))) for g in gates if g["field"] == field and g.get("op")]


def write_history_html(db: Path, suite: str | None, fields: list[str], out: Path) -> Path:
    """Trend per field (one line per model/backend/input), with the absolute gate limits drawn."""
    import jinja2

    from evalkit.report import plots

    recorded = runs(db, suite)
    figures = []
    for field in fields:
        table = history_table(db, suite, field)
        if table.empty:
            continue
        figures.append({"field": field, "png": plots.trend(table, field, gate_limits(recorded, field))})
    env = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("history.html.j2").render(suite=suite or "all suites", runs=recorded, figures=figures)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html)
    tmp.replace(out)
    return out
