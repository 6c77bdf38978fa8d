"""The files a run writes when its combinations are done, checked before it starts.

A run's history database, ``--junit`` and ``--summary-md`` files and ``--save-golden`` folder are written at
its end; a target that cannot be written (a folder where a file is expected, a file where a folder is, a
damaged database, a read-only place) would only be found after the whole run. ``check_targets`` finds it
first, writing nothing: a target that does not exist yet is judged by the nearest folder above it that does.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from evalkit.errors import UserError


def check_targets(finishing: dict, history_db: Path | None) -> None:
    """Every finishing target of a run (run.FINISHING_KEYS' junit, summary_md, save_golden) and its history
    database can be written; UserError (exit 2) naming the first that cannot, and how to fix it."""
    if history_db is not None:
        check_history_db(Path(history_db))
    for key, flag in (("junit", "--junit"), ("summary_md", "--summary-md")):
        if finishing.get(key):
            check_writable_file(Path(finishing[key]), flag)
    if finishing.get("save_golden"):
        check_golden_folder(Path(finishing["save_golden"]))


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return parent
    return Path(path.anchor or ".")


def _check_folder_can_hold(path: Path, what: str) -> None:
    """``path``'s folder exists and is writable, or can be made: the nearest existing folder above it is a
    writable folder."""
    try:
        parent = _nearest_existing(path)
        if parent.is_symlink() and not parent.exists():
            raise UserError(f"{what} {path}: {parent} is a symbolic link that leads nowhere (broken, or a loop of "
                            "symbolic links); fix the link or choose another path")
        if not parent.is_dir():
            raise UserError(f"{what} {path}: {parent} is a file, not a folder (expected a folder to write "
                            f"{path.name} into); choose another path")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{what} {path}: the folder {parent} is not writable by this user; choose another path "
                            "or make it writable")
    except OSError as exc:  # a symlink loop, a name too long
        raise UserError(f"{what} {path}: cannot be written ({exc.strerror}); choose another path") from None


def check_writable_file(path: Path, what: str) -> None:
    """``path`` can be written as a file (replaced when it exists)."""
    try:
        if path.is_dir():
            raise UserError(f"{what} {path}: a folder; give the file to write (e.g. {path / 'out'})")
        if path.exists() and not os.access(path, os.W_OK):
            raise UserError(f"{what} {path}: not writable by this user; choose another file or make it writable")
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot be written ({exc.strerror}); choose another path") from None
    _check_folder_can_hold(path, what)


def check_golden_folder(folder: Path) -> None:
    """``--save-golden`` names a folder that is or can be made, and whose golden.json (if any) is readable."""
    from evalkit.measure.golden import MANIFEST, read_manifest

    what = "--save-golden"
    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{what} {folder}: a file, not a folder (expected the folder of a golden set); choose "
                            "another path")
    except OSError as exc:
        raise UserError(f"{what} {folder}: cannot be written ({exc.strerror}); choose another path") from None
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{what} {folder}: not writable by this user; choose another folder or make it writable")
        if (folder / MANIFEST).exists():
            read_manifest(folder / MANIFEST)  # a damaged one is refused now, not after the run
        return
    _check_folder_can_hold(folder / MANIFEST, what)


def check_history_db(db: Path) -> None:
    """The history database a run records itself in is an evalkit history database that can be written, or can
    be made (read only: an existing database is opened read-only, a missing one is not created; its folder is
    the run's output folder, whose making says what is wrong with that place)."""
    what = "history database"
    fix = "move it away or pass another --out"
    try:
        if db.is_dir():
            raise UserError(f"{what} {db}: a folder (expected an SQLite file, or nothing there); {fix}")
        exists = db.exists()
    except OSError as exc:
        raise UserError(f"{what} {db}: cannot be opened ({exc.strerror}); {fix}") from None
    if not exists:  # made beside the run folders: making their folder is where a bad place is told
        return
    if not os.access(db, os.R_OK | os.W_OK):
        raise UserError(f"{what} {db}: not writable by this user (the run records itself there); make it "
                        f"writable, or {fix}")
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        from evalkit.ci.history import _is_busy

        if _is_busy(exc):  # another process is writing it: busy, not damaged (the run waits for it at its end)
            return
        tables = None
    if tables is None or (tables and "runs" not in tables):
        raise UserError(f"{what} {db}: not an evalkit history database (expected an SQLite file with its runs "
                        f"table); {fix}")
