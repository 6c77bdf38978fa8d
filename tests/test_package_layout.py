"""The tests mirror the package: tests/<folder>/test_<module>.py tests evalkit/<folder>/<module>.py.

A file may add an aspect after the module's name (``test_suite_fuzz.py`` tests evalkit/config/suite.py), so a
test file's name says which module to read beside it. The few files that test no one module are listed, each
with why.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO

PACKAGE, TESTS = REPO / "evalkit", REPO / "tests"
NOT_ONE_MODULE = {  # test files (relative to tests/) that test no single module, and what they test instead
    "test_bad_inputs.py": "bad input to every command, end to end",
    "test_package.py": "evalkit as an installed package: its files, flags, init, -q / -v",
    "test_package_layout.py": "this check",
    "test_demo_run_reuse.py": "tests/conftest.py's reuse of the README demo's run",
    "test_bad_inputs_preflight.py": "bad input found by preflight before a run writes anything, end to end",
    "test_docs.py": "README.md and docs/: its size, links, commands and the dependency table",
    "test_layers.py": "evalkit's import graph: no loops, no import up a layer (tests/import_graph.py)",
}
NOT_MODULES = {"benchmarks"}  # speed scripts and benchmarks, not tests of a module


def module_of(test_file: Path) -> str | None:
    """The module ``test_file`` mirrors, relative to the repository (None where there is none)."""
    relative = test_file.relative_to(TESTS)
    name = relative.stem[len("test_"):]
    if relative.parts[0] == "notebooks":  # tests/notebooks/test_X.py: notebooks/X.ipynb
        candidates = [REPO / "notebooks" / f"{name}.ipynb"]
    else:
        folder = PACKAGE.joinpath(*relative.parts[:-1])
        candidates = [p for p in folder.glob("*.py") if p.stem != "__init__"] if folder.is_dir() else []
        candidates += [q for q in folder.glob("*/") if (q / "__init__.py").is_file()]  # a subpackage's own tests
    for path in candidates:
        stem = path.stem if path.suffix else path.name
        if path.exists() and (name == stem or name.startswith(stem + "_")):
            return str(path.relative_to(REPO))
    return None


def test_every_test_file_names_the_module_it_tests():
    strays = []
    for test_file in sorted(TESTS.rglob("test_*.py")):
        relative = test_file.relative_to(TESTS)
        if relative.parts[0] in NOT_MODULES or str(relative) in NOT_ONE_MODULE:
            continue
        if module_of(test_file) is None:
            strays.append(str(relative))
    assert not strays, (f"test files that mirror no module of evalkit/: {strays}; name each "
                        "tests/<folder>/test_<module>[_<aspect>].py after the module it tests (git mv), or list "
                        "it in NOT_ONE_MODULE with what it tests")


def test_the_check_tells_a_stray():
    # the rule above can fail: a name that mirrors nothing is found, a mirroring one is not
    assert module_of(TESTS / "measure" / "test_evaluate.py") is None  # evalkit/measure/evaluate.py is gone
    assert module_of(TESTS / "config" / "test_suite_fuzz.py") == "evalkit/config/suite.py"
    assert module_of(TESTS / "notebooks" / "test_explore_run.py") == "notebooks/explore_run.ipynb"
