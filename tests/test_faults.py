"""Interruptions and faults lose nothing: each fault of issue 27 with real processes and real signals.

evalkit runs here as a user runs it (``python -m evalkit``, its own process, its worker processes, ffmpeg);
the faults are real signals: the test's own (SIGKILL of the driver, SIGCONT), or the one evalkit sends itself
at a named step (``EVALKIT_FAULT_STOP_AT``, evalkit/faults.py) where the window is too narrow to hit from
outside (between two renames, inside the history transaction). The test waits for what it can see (an
entry.json, a stopped process, a line on stderr), never for a time. Every evalkit process started here
carries a tag in its environment, which its workers and their ffmpeg children inherit: ``no_process_left``
finds any of them still alive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from evalkit.ci import history
from evalkit.matrix.jobs import ENTRY_JSON, LOCK_FILE, STATE_JSON, longest_first, plan_jobs
from tests.conftest import short_audio, write_suite
from tests.helpers import tiny_suite

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: /proc, prctl, renameat2")

TAG = "EVALKIT_TEST_TAG"
PATIENCE = 300  # seconds: only a bound for a hung evalkit; nothing here waits for a time to pass


def start(*args, fault: str | None = None, sig: str = "TERM", env: dict | None = None, tag: str = "") -> subprocess.Popen:
    """``evalkit -q ARGS`` in its own process (progress lines off: stderr holds only what it tells the user)."""
    environment = {**os.environ, "TQDM_DISABLE": "1", TAG: tag or uuid.uuid4().hex, **(env or {})}
    environment.pop("EVALKIT_FAULT_STOP_AT", None)
    if fault:
        environment.update(EVALKIT_FAULT_STOP_AT=fault, EVALKIT_FAULT_SIGNAL=sig)
    return subprocess.Popen([sys.executable, "-m", "evalkit", *map(str, args)], env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_from_a_terminal)


def as_from_a_terminal() -> None:
    """In the child: SIGINT as a terminal's program has it. A pytest started as a background job (``cmd &`` in a
    script) has SIGINT ignored, its children inherit that, and Python then leaves it ignored: evalkit's own
    SIGINT at a fault step would do nothing (the run finished, exit 0, where the test expects 130)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def evalkit(*args, tag: str = "", **how) -> tuple[int, str, str]:
    """``start`` to the end: (exit code, stdout, stderr), once no process it started is left."""
    tag = tag or uuid.uuid4().hex
    process = start(*args, tag=tag, **how)
    out, err = process.communicate(timeout=PATIENCE)
    no_process_left(tag)
    return process.returncode, out, err


def wait_for(condition, what: str):
    """Poll ``condition`` until it is true (its value is returned); fail after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def tagged(tag: str) -> list[int]:
    """Live processes whose environment carries ``tag`` (an evalkit started here, its workers, their ffmpeg)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"{TAG}={tag}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def no_process_left(tag: str) -> None:
    wait_for(lambda: not tagged(tag), f"every process of run {tag} to end")


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err.strip()


def the_partial(out: Path) -> Path:
    (partial,) = (out / "tiny").glob(".*.partial")
    return partial


def finished_run(out: Path) -> Path:
    (run_dir,) = [p for p in (out / "tiny").iterdir() if not p.name.startswith(".")]
    assert (run_dir / "run.json").is_file() and not (run_dir / LOCK_FILE).exists()
    return run_dir


def statuses(run_dir: Path) -> dict[str, str]:
    return {e["model"]: e["status"] for e in json.loads((run_dir / "run.json").read_text())["runs"]}


def recorded(db: Path) -> list[tuple[str, str, int]]:
    """(run id, run folder, number of values) of each run in the history database, which must be intact."""
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return con.execute('SELECT r.run_id, r.run_dir, (SELECT COUNT(*) FROM "values" v WHERE v.run_id = r.run_id)'
                           " FROM runs r ORDER BY r.run_id").fetchall()


FAULTS_AUDIO_SECONDS = 1.0  # 24 frames a combination: the frames' number and values are not what is checked here


def faults_suite(fixtures_dir: Path, tmp_path: Path, models=("reference",)) -> dict:
    """``tiny_suite`` without the face metrics, on 1 s of its speech: what is checked here is processes, files
    and messages (every step a fault stops at is reached whatever the length)."""
    data = tiny_suite(fixtures_dir, tmp_path, models, face=False)
    data["inputs"][0]["audio"] = str(short_audio(fixtures_dir, tmp_path, FAULTS_AUDIO_SECONDS))
    return data


def suite_file(fixtures_dir: Path, tmp_path: Path, models=("reference",), **extra) -> Path:
    return write_suite(tmp_path / "s.yaml", {**faults_suite(fixtures_dir, tmp_path, models), **extra})


# --- 1. a worker killed with SIGKILL ------------------------------------------------------------------------

def test_a_killed_worker_fails_its_own_combination_and_the_run_resumes(fixtures_dir, tmp_path):
    from evalkit.config.suite import load_suite

    suite = suite_file(fixtures_dir, tmp_path, ("reference", "copycat", "lag2"))
    jobs = longest_first(load_suite(suite).suite, plan_jobs(load_suite(suite).suite))
    victim = jobs[-1]  # with 2 workers, sent only once a first combination has finished
    out, tag = tmp_path / "out", uuid.uuid4().hex
    # the worker that takes the victim's job kills itself with SIGKILL (what the out-of-memory killer sends)
    code, _, err = evalkit("-q", "run", suite, "--out", out, "--workers", 2, fault=f"job:{victim.folder}", sig="KILL",
                           tag=tag)
    partial = the_partial(out)
    line = one_line(err)
    assert code == 1, err
    assert line == (f"evalkit: error: {victim.model}/cpu/th/reconstruction: worker killed by signal 9 (SIGKILL: what "
                    f"the out-of-memory killer sends); the 2 other combinations ran and are kept in {partial}; run it "
                    f"again with: evalkit run --resume {partial}")
    no_process_left(tag)
    entries = {p.parent.name: json.loads(p.read_text()) for p in partial.glob(f"*/{ENTRY_JSON}")}
    assert entries[victim.folder]["status"] == "failed"
    assert entries[victim.folder]["reason"].startswith("worker killed by signal 9")
    kept = {k: e for k, e in entries.items() if k != victim.folder}
    assert len(kept) == 2 and all(e["status"] == "ok" for e in kept.values())
    code, stdout, _ = evalkit("runs", "partial", out)
    assert code == 0 and f"{partial}  stopped" in stdout and "2 of 3 combinations finished" in stdout, stdout

    code, _, err = evalkit("run", "--resume", partial, "--workers", 2, tag=tag)
    assert code == 0, err
    assert "resuming run" in err and "2 of 3 combinations already finished" in err
    run_dir = finished_run(out)
    assert set(statuses(run_dir).values()) == {"ok"}
    record = json.loads((run_dir / "run.json").read_text())
    for entry in record["runs"]:  # the kept ones were not run again
        if entry["folder"] in kept:
            assert entry["generate_seconds"] == kept[entry["folder"]]["generate_seconds"]
    no_process_left(tag)


# --- 2. two resumes of one folder; 5. SIGKILL of the driver --------------------------------------------------

def test_a_killed_driver_leaves_no_worker_and_one_resume_owns_the_folder(fixtures_dir, tmp_path):
    suite = suite_file(fixtures_dir, tmp_path, ("reference", "copycat", "lag2"))
    out, tag = tmp_path / "out", uuid.uuid4().hex
    driver = start("-q", "run", suite, "--out", out, "--workers", 2, tag=tag)
    partial = wait_for(lambda: next((out / "tiny").glob(f".*.partial/*/{ENTRY_JSON}"), None),
                       "a first finished combination").parent.parent
    workers = [pid for pid in tagged(tag) if pid != driver.pid]
    assert workers, "the run has no worker processes"
    driver.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    driver.wait(timeout=PATIENCE)  # (not communicate(): its pipes stay open while a worker holds them)
    finished = sorted(partial.glob(f"*/{ENTRY_JSON}"))
    no_process_left(tag)  # the workers died with their driver (and their ffmpeg with them) ...
    assert sorted(partial.glob(f"*/{ENTRY_JSON}")) == finished  # ... at once: none finished its job after it
    driver.communicate(timeout=PATIENCE)
    code, stdout, _ = evalkit("runs", "partial", out)
    assert code == 0 and f"{partial}  stopped" in stdout, stdout  # the lock went with its process

    # the first resume stops itself (SIGSTOP) right after it claimed the folder, holding its lock
    first = start("-q", "run", "--resume", partial, fault="claimed", sig="STOP", tag=tag)
    try:
        wait_for(lambda: stopped(first.pid), "the first resume to stop with the folder claimed")
        code, stdout, _ = evalkit("runs", "partial", out)
        assert code == 0 and f"{partial}  running" in stdout, stdout
        code, _, err = evalkit("-q", "run", "--resume", partial)
        assert code == 2, err
        assert one_line(err).startswith(f"evalkit: error: --resume {partial}: run ") and \
            "is being written by another evalkit process" in err
        code, stdout, _ = evalkit("runs", "partial", out, "--remove")
        assert code == 0 and f"{partial}  running" in stdout and partial.is_dir(), stdout  # never removed
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=PATIENCE)
    assert first.returncode == 0, err
    run_dir = finished_run(out)
    assert set(statuses(run_dir).values()) == {"ok"}
    (entry,) = recorded(out / history.HISTORY_DB)
    assert entry[:2] == (run_dir.name, str(run_dir.resolve())) and entry[2] > 0
    no_process_left(tag)


# --- 3. a signal in the finishing steps ------------------------------------------------------------------------

@pytest.mark.parametrize("step, sig", [("history", "TERM"), ("finishing", "INT"), ("renamed", "TERM")])
def test_a_signal_in_the_finishing_steps_loses_nothing(fixtures_dir, tmp_path, step, sig):
    suite = suite_file(fixtures_dir, tmp_path)
    out, junit = tmp_path / "out", tmp_path / "ci" / "junit.xml"
    db = out / history.HISTORY_DB
    code, _, err = evalkit("-q", "run", suite, "--out", out, "--junit", junit, fault=step, sig=sig)
    what = "terminated" if sig == "TERM" else "interrupted"
    assert code == (143 if sig == "TERM" else 130), err
    if step == "renamed":  # the rename is the last step: the run is complete, and says so
        run_dir = finished_run(out)
        assert one_line(err) == (f"evalkit: {what} (after the run was completed: {run_dir}, with its history entry "
                                 "and every file asked for; nothing to resume)")
        assert not list((out / "tiny").glob(".*.partial")) and junit.is_file()
        assert [r[:2] for r in recorded(db)] == [(run_dir.name, str(run_dir.resolve()))]
        return
    partial = the_partial(out)
    written = "the record and report are" if step == "history" else \
        "the record and report, the history entry and the JUnit XML are"
    missing = "the history entry, the JUnit XML and the final name" if step == "history" else "the final name"
    assert one_line(err) == (f"evalkit: {what} (1 of 1 combinations finished; {written} written ({partial}); not yet "
                             f"{missing}; finish with: evalkit run --resume {partial})")
    assert (partial / "run.json").is_file() and (partial / "report.html").is_file()
    assert json.loads((partial / STATE_JSON).read_text())["finishing"] == {"junit": str(junit.resolve())}
    before = recorded(db) if db.exists() else []
    assert len(before) == (0 if step == "history" else 1)  # the transaction was rolled back, or committed whole
    code, _, err = evalkit("-q", "run", "--resume", partial)  # JUnit as the run was asked: kept in its state
    assert code == 0, err
    run_dir = finished_run(out)
    assert not partial.exists() and junit.is_file()
    (entry,) = recorded(db)  # once, with every value
    assert entry[:2] == (run_dir.name, str(run_dir.resolve())) and entry[2] > 0
    assert before in ([], [entry])


# --- 4. a busy history database ----------------------------------------------------------------------------

def hold_history(db: Path) -> subprocess.Popen:
    """Another process holding a write transaction on ``db`` until its stdin closes."""
    history.connect(db).close()
    code = ("import sqlite3, sys\n"
            "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "con.execute('BEGIN IMMEDIATE')\n"
            "con.execute('DELETE FROM runs WHERE 0')\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n"
            "con.execute('COMMIT')\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    assert holder.wait(timeout=PATIENCE) == 0


def test_a_busy_history_database_is_waited_for_and_never_called_damaged(fixtures_dir, tmp_path):
    suite = suite_file(fixtures_dir, tmp_path)
    out = tmp_path / "out"
    db = out / history.HISTORY_DB
    db.parent.mkdir(parents=True)

    # busy longer than the timeout: the run completes, says so on one line, and is recorded later
    holder = hold_history(db)
    try:
        code, stdout, err = evalkit("-q", "run", suite, "--out", out, env={"EVALKIT_HISTORY_BUSY_SECONDS": "0.5"})
    finally:
        release(holder)
    assert code == 0, err
    run_dir = finished_run(out)
    assert stdout.strip().splitlines()[-1] == str(run_dir)
    assert one_line(err) == (f"evalkit: warning: {db}: busy: another process "
                             "held a write transaction on it for more than 0.5 s (the database is not damaged); "
                             f"record the run later with: evalkit history --record {run_dir}")
    assert recorded(db) == []
    code, stdout, err = evalkit("history", "--record", run_dir)
    assert code == 0 and stdout.strip() == f"recorded run {run_dir.name} in {db}", err
    (entry,) = recorded(db)
    assert entry[:2] == (run_dir.name, str(run_dir.resolve())) and entry[2] > 0

    # busy for a while: the run waits (the default timeout), says so, and records itself once the other is done
    holder = hold_history(db)
    waiting = start("run", suite, "--out", out)
    try:
        for line in waiting.stderr:  # until the run says it waits
            if line == f"{db}: busy (another process is writing it); waiting up to 60 s ...\n":
                break
        else:
            pytest.fail("the run ended without waiting for the history database")
    finally:
        release(holder)
    _, err = waiting.communicate(timeout=PATIENCE)
    assert waiting.returncode == 0, err
    assert "damaged" not in err and "warning" not in err
    assert len(recorded(db)) == 2


# --- 6. an interrupted sign-off --------------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["finishing", "renamed"])
def test_an_interrupted_signoff_is_finished_by_the_command_it_names(fixtures_dir, tmp_path, step):
    model = Path(shutil.copy(fixtures_dir / "models" / "reference.onnx", tmp_path / "candidate.onnx"))
    data = faults_suite(fixtures_dir, tmp_path, ("reference",))
    data["models"][0]["name"] = "candidate"  # its generator: the fixture's reference.onnx, not `model`
    data["gates"] = [{"field": "psnr_mean", "op": ">=", "value": 20}]
    suite = write_suite(tmp_path / "s.yaml", data)
    out = tmp_path / "out"
    code, _, err = evalkit("-q", "signoff", suite, "--model", model, "--out", out, fault=step)
    assert code == 143, err
    if step == "renamed":
        run_dir = finished_run(out)
        assert "after the run was completed" in one_line(err)
    else:
        partial = the_partial(out)
        assert one_line(err) == (f"evalkit: terminated (1 of 1 combinations finished; the record and report, the "
                                 f"history entry and the sign-off are written ({partial}); not yet the final name; "
                                 f"finish with: evalkit signoff --resume {partial})")
        code, stdout, err = evalkit("signoff", "--resume", partial)
        assert code == 0, err
        assert f"sign-off PASS: 1 of 1 criteria passed for {model.resolve()}" in stdout
        run_dir = finished_run(out)
    signoff = json.loads((run_dir / "signoff.json").read_text())
    assert signoff["verdict"] == "PASS" and signoff["run"]["folder"] == str(run_dir.resolve())
    code, stdout, err = evalkit("signoff", "verify", run_dir / "signoff.json", "--model", model)
    assert code == 0 and stdout.startswith("verified"), err


# --- 7. baseline set --force ------------------------------------------------------------------------------------

def test_replacing_a_baseline_leaves_no_moment_without_one(fixtures_dir, tmp_path):
    from evalkit.ci.baseline import is_baseline, set_baseline
    from evalkit.config.suite import load_suite
    from evalkit.run import run_suite

    first = run_suite(load_suite(suite_file(fixtures_dir, tmp_path)), out=tmp_path / "out", log=lambda *_: None)
    second = tmp_path / "second" / "tiny" / "r2"
    shutil.copytree(first, second)
    record = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**record, "run_id": "r2"}))
    where = tmp_path / "baselines"
    dest = set_baseline(first, "main", where)

    def current() -> str:
        return json.loads((dest / "run.json").read_text())["run_id"]

    # SIGKILL right after the switch: the new baseline is there, whole
    code, _, err = evalkit("baseline", "set", second, "--name", "main", "--dir", where, "--force",
                           fault="baseline-swap", sig="KILL")
    assert code == -signal.SIGKILL, err
    assert is_baseline(dest) and current() == "r2"

    # a reader that never stops looking finds one baseline or the other, every time, while it is replaced
    reader = subprocess.Popen([sys.executable, "-c", (
        "import json, sys\n"
        "from pathlib import Path\n"
        "path, seen, missing = Path(sys.argv[1]), 0, 0\n"
        "while not Path(sys.argv[2]).exists():\n"
        "    if path.is_dir():\n"
        "        seen += 1\n"
        "    else:\n"
        "        missing += 1\n"
        "print(seen, missing)\n"), str(dest), str(tmp_path / "stop")], stdout=subprocess.PIPE, text=True)
    for k in range(20):
        set_baseline(first if k % 2 else second, "main", where, force=True)
    (tmp_path / "stop").touch()
    seen, missing = map(int, reader.communicate(timeout=PATIENCE)[0].split())
    assert seen > 0 and missing == 0
    assert is_baseline(dest) and current() == record["run_id"]
    assert sorted(p.name for p in where.iterdir() if not p.name.startswith(".")) == ["main"]
