"""Baselines: a small exported record of a run (run.json, summary.csv, frames.csv; no videos)
that a team commits to its own repository and gates later runs against."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from evalkit.errors import UserError
from evalkit.faults import fault_point
from evalkit.record.summary import RUN_RECORD, load_run

BASELINE_FILES = (RUN_RECORD, "summary.csv", "frames.csv", "parity.csv")
DEFAULT_DIR = Path("baselines")
BASELINE_MARKER = "BASELINE"


def check_name(name: str, what: str = "--name") -> str:
    """A baseline name is a name, never a path: not empty, not '.' or '..', no separator."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:  # covers '.', '..' and hidden names
        raise UserError(f"{what}: {name!r} is not a baseline name (expected a plain name such as 'main', "
                        "not empty, not starting with '.', without '/' or '\\')")
    return name


def is_baseline(folder: Path) -> bool:
    """A folder evalkit made as a baseline: it holds the BASELINE marker and a run record."""
    return (Path(folder) / BASELINE_MARKER).is_file() and (Path(folder) / RUN_RECORD).is_file()


def set_baseline(run_dir: Path, name: str | None = None, folder: Path = DEFAULT_DIR, force: bool = False) -> Path:
    """Copy the run's record and tables to ``folder/name`` (default name: the suite's); returns that folder.

    Nothing but ``folder/name`` is ever touched. An existing ``folder/name`` is replaced only with ``force``
    and only when it is a baseline itself (``is_baseline``); the copy is written under a temporary name
    and put in place in one step (``exchange``: the old one then has the temporary name, and is removed), so
    a failure or a signal leaves the old baseline or the new one at ``folder/name``, never neither.
    """
    record = load_run(run_dir)
    name = check_name(name if name is not None else record.suite.name,
                      "--name" if name is not None else f"{Path(run_dir) / RUN_RECORD}: suite name")
    folder = Path(folder)
    dest = folder / name
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UserError(f"{dest}: exists and is not a baseline folder; choose another --name or --dir")
    if dest.exists():
        if not is_baseline(dest):
            raise UserError(f"{dest}: exists and is not an evalkit baseline (no {BASELINE_MARKER} and {RUN_RECORD}); "
                            "refusing to replace it; choose another --name or --dir")
        if not force:
            raise UserError(f"{dest}: a baseline of that name exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder))
    try:
        for file in BASELINE_FILES:
            if (Path(run_dir) / file).is_file():
                shutil.copy2(Path(run_dir) / file, tmp / file)
        (tmp / BASELINE_MARKER).write_text(f"evalkit baseline '{name}' from run {record.run_id} "
                                           f"({record.created_utc}, suite {record.suite.name})\n")
        if dest.exists():
            exchange(tmp, dest)  # one step: the new baseline in, the old one at tmp's name; never neither
            fault_point("baseline-swap")
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


RENAME_EXCHANGE = 2  # linux/fs.h: renameat2's flag that swaps two existing paths atomically
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap two existing folders in one atomic step (Linux's ``renameat2(RENAME_EXCHANGE)``, through ctypes): a
    reader of either path sees the old folder or the new one, never nothing. UserError where the system or the
    file system cannot (another OS, an old kernel, some network file systems): nothing is changed then."""
    import ctypes
    import errno

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform.startswith(
        "linux") else None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(a), None, str(b))
    raise UserError(f"{b}: cannot replace it in one step here (this system or file system has no atomic "
                    "exchange, renameat2 RENAME_EXCHANGE); remove the old baseline yourself, then run "
                    "`evalkit baseline set` again without --force")


def resolve_baseline(value: str, suite_file: Path) -> Path:
    """A baseline folder from a suite's ``baseline:``: a path (relative to the suite file), or a name in ./baselines."""
    candidates = [suite_file.parent / value, DEFAULT_DIR / value, Path(value)]
    for path in candidates:
        if (path / RUN_RECORD).is_file():
            return path.resolve()
    raise UserError(f"{suite_file}: baseline: {value!r} not found (looked in {', '.join(str(c) for c in candidates)}); "
                    f"make one with `evalkit baseline set RUN_DIR --name {Path(value).name}`")


def load_baseline(value: str, suite_file: Path):
    """The checked record of a suite's baseline (see ``load_run``)."""
    return load_run(resolve_baseline(value, suite_file))
