"""Atomic writes: a reader never sees half a file. On the ground floor: everything may use them
(``record.io`` is the record's name for them).

Every file evalkit writes into a run folder, a baseline or a golden set is
written under a temporary name beside its destination, then renamed over it
(``os.replace``, atomic on one file system). A failed write leaves the old
file (or none), never a truncated one.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file, whatever the path (links, relative parts); False where either is
    missing."""
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


def temporary_path(path: Path) -> Path:
    """The hidden name ``path`` is written under before the rename: ``.<name>.<pid>.tmp<suffix>``, beside it.

    The suffix is kept so that writers that infer the format from it (ffmpeg, matplotlib, numpy) still do; the
    process id keeps two processes writing the same file from sharing a temporary.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yields a temporary path to write; renamed to ``path`` when the block ends without an exception, removed
    when it raises. For writers that take a file name (ffmpeg, matplotlib, ``np.savez``)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data) -> Path:
    """Write ``data`` as indented JSON atomically; returns ``path``.

    Non-finite floats are refused (``allow_nan=False``): make them strings first (``record.summary.json_safe``),
    as the record does, so that a file evalkit writes is standard JSON.
    """
    return write_text_atomic(path, json.dumps(data, indent=1, default=str, allow_nan=False) + "\n")
