"""The docstring examples of evalkit/ run as tests (pytest's testpaths holds ``evalkit`` beside ``tests``).

Only the modules whose source holds an example (``>>>``) are imported for it: ``--doctest-modules`` would import
every module of the package in every xdist worker, Ray's and dlib's wrappers among them, to find nothing in most.
A new example in any module is collected without a change here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).resolve().parent / "evalkit"


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".py" and file_path.name != "__main__.py" and PACKAGE in file_path.resolve().parents:
        if ">>>" in file_path.read_text(encoding="utf-8"):
            return DoctestModule.from_parent(parent, path=file_path)
    return None
