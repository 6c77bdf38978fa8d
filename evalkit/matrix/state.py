"""A ``.partial`` run folder's state: ``run_state.json`` (what `evalkit run --resume` needs), the finished
entries kept in its combination folders (``entry.json``), the lock of the one process writing it, and the
unfinished folders found in an output folder (``evalkit runs partial``)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from evalkit.config.suite import LoadedSuite
from evalkit.errors import UserError
from evalkit.record.io import write_json_atomic
from evalkit.record.layout import PARTIAL_SUFFIX

ENTRY_JSON = "entry.json"  # a combination's finished entry (non-finite floats as JSON's Infinity/NaN: read back exactly)
STATE_JSON = "run_state.json"  # in a .partial run folder: what `evalkit run --resume` needs
STATE_KIND = "evalkit.partial_run"
LOCK_FILE = ".lock"  # in a .partial run folder: locked (flock) by the one process writing it, for its lifetime


def write_state(partial: Path, loaded: LoadedSuite, run_id: str, created_utc: str, combinations: int,
                keep_suite_as: str | None, record: dict, finishing: dict | None = None) -> None:
    """``run_state.json``: the suite (path and SHA-256), the run, the files' facts, who is writing it, and what
    the run writes when its combinations are done (``finishing``: run.FINISHING_KEYS)."""
    write_json_atomic(partial / STATE_JSON, {"finishing": finishing or {},
        "kind": STATE_KIND, "run_id": run_id, "created_utc": created_utc,
        "suite_path": str(loaded.path), "suite_sha256": loaded.sha256, "kept_suite": keep_suite_as,
        "combinations": combinations, "host": socket.gethostname(), "pid": os.getpid(),
        "pid_started": process_started(os.getpid()), "models": record["models"], "inputs": record["inputs"],
    })


def mark_stopped(partial: Path) -> None:
    """The run writing ``partial`` has stopped (interrupted): no process owns the folder now."""
    state = json.loads((Path(partial) / STATE_JSON).read_text())
    write_json_atomic(Path(partial) / STATE_JSON, {**state, "pid": None, "pid_started": None})


def read_state(partial: Path) -> dict:
    path = Path(partial) / STATE_JSON
    if not Path(partial).is_dir():
        raise UserError(f"--resume {partial}: folder not found (give a .<run-id>.partial run folder)")
    if not path.is_file():
        raise UserError(f"--resume {partial}: no {STATE_JSON} in it: not an unfinished run folder of this evalkit "
                        "(list them with `evalkit runs partial DIR`)")
    state = json.loads(path.read_text())
    if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
        raise UserError(f"{path}: not an evalkit run state (kind {STATE_KIND!r} expected)")
    return state


def finished_entries(partial: Path) -> dict[str, dict]:
    """The entries with status ok kept in a .partial folder, by combination folder."""
    found = {}
    for path in sorted(Path(partial).glob(f"*/{ENTRY_JSON}")):
        entry = json.loads(path.read_text())
        if entry.get("status") == "ok":
            found[path.parent.name] = entry
    return found


@dataclass(frozen=True)
class PartialRun:
    """An unfinished run folder: where, how old (since it last changed), how far, whether its writer lives."""

    path: Path
    age_seconds: float
    finished: int
    combinations: int | None
    running: bool


def process_started(pid: int) -> str | None:
    """When process ``pid`` started: this boot's id and the process's start time in clock ticks since boot
    (field 22 of /proc/PID/stat). With the pid, it names one process: a pid is reused once its process is gone.
    None where there is no such process or no /proc to ask."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError, TypeError):
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # fields from the 3rd, after the name (which may hold ')')


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


class RunLock:
    """The lock on a ``.partial`` run folder's LOCK_FILE: one owner per run folder. Held (``fcntl.flock``) from
    the moment a run or a resume claims the folder until it stops; the kernel releases it when its process
    ends, however it ends (SIGKILL included), so a lock that can be taken means no process is writing."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self.fd = Path(folder), fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the lock
            self.fd = None

    def forget_file(self, folder: Path) -> None:
        """The run is complete in ``folder`` (its final name): remove the lock file there, then release."""
        try:
            (Path(folder) / LOCK_FILE).unlink()
        except FileNotFoundError:
            pass
        self.release()


def claim(folder: Path) -> RunLock | None:
    """Lock ``folder`` (a .partial run folder) for this process; None when another process holds it.
    FileNotFoundError when the folder is gone, or went once locked (a run that held it completed and renamed it:
    the file locked must still be the folder's own)."""
    folder = Path(folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    for attempt in range(3):  # `runs partial` takes a shared lock for a moment to look: look again after it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 2:
                os.close(fd)
                return None
            time.sleep(0.05)
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(folder / LOCK_FILE))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "the run folder was completed or removed meanwhile", str(folder))
    return RunLock(folder, fd)


def locked(folder: Path) -> bool | None:
    """Whether a process holds ``folder``'s lock now (True), none does (False), or the folder has no lock file
    (None: made by an evalkit before the lock)."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def writer_running(state: dict) -> bool:
    """Whether the process that wrote a run_state.json is still running, on this machine: its pid lives and, where
    the state recorded when that process started, it is the same process (not another one given the same pid)."""
    if state.get("host") != socket.gethostname() or not _alive(state.get("pid")):
        return False
    started = state.get("pid_started")
    return started is None or process_started(state["pid"]) in (None, started)


def partial_runs(where: Path) -> list[PartialRun]:
    """The .partial folders in ``where`` (a suite's folder) or one level below (an output folder)."""
    where = Path(where)
    folders = sorted({*where.glob(f".*{PARTIAL_SUFFIX}"), *where.glob(f"*/.*{PARTIAL_SUFFIX}")})
    now, found = time.time(), []
    for folder in folders:
        if not folder.is_dir():
            continue
        state = {}
        try:
            state = json.loads((folder / STATE_JSON).read_text())
        except (OSError, ValueError):
            pass
        stamps = [p.stat().st_mtime for p in (folder, *folder.glob(f"*/{ENTRY_JSON}")) if p.exists()]
        held = locked(folder)  # the lock says; a folder without one (an older evalkit's) by its writer's pid
        running = held if held is not None else writer_running(state)
        found.append(PartialRun(folder, now - max(stamps), len(finished_entries(folder)),
                                state.get("combinations"), running))
    return found
