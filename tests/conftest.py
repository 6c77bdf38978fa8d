"""Shared test fixtures: evalkit's own fixtures (built once per session), the demo run, real data.

The README's test command runs the test files in pytest-xdist worker processes, one per core
(``-n auto``). The two costly session fixtures, the built fixtures and the demo run, are still made once
per test session: the first worker to need one makes it under a file lock, in a folder every worker sees;
the others wait and reuse it (``once_per_session``). Without xdist (``python -m pytest`` alone) they are
made as usual.

The demo run is the README's: when ``evalkit demo`` has already run in this checkout (as it has in CI, which
runs the README's first command before its second) and its newest run in ``reports/demo/`` was made by this
very code (the record's ``evalkit_source_sha256``), with the same packages, on this machine, from the same
``suites/demo.yaml`` and fixture files as the tests', the tests read a copy of that run instead of making the
same run again (``readme_demo_run``; pytest's header says which). Otherwise, or with ``EVALKIT_TESTS_OWN_DEMO=1``,
they make it themselves from the same suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from filelock import FileLock

from evalkit.media.ffmpeg import probe_video
from evalkit.fixtures.build import build_fixtures
from evalkit.media.decode import template_frames

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EVALKIT_SHARED", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"
README_DEMO_SUITE = REPO / "suites" / "demo.yaml"  # what the README's `evalkit demo` runs in a checkout
README_FIXTURES = REPO / "data" / "fixtures"  # and where it builds the fixtures


def real_file(name: str) -> Path:
    """A file of ../shared/data/real, or skip the test saying why."""
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is absent (CI has ../shared; set EVALKIT_SHARED elsewhere)")
    return path


def decode(path: Path, frames: int | None = None) -> np.ndarray:
    """Every frame of a video (or the first ``frames``), as one (N, H, W, 3) uint8 array."""
    info = probe_video(path)
    n = info.frames if frames is None else frames
    return np.stack([f.copy() for _, f in template_frames(info, n)])


def write_suite(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def demo_suite_data(fixtures: Path) -> dict:
    """suites/demo.yaml with its fixture paths pointing into ``fixtures``, a shorter latency pass and the full
    frames stored (for the tests' own runs; the demo run itself is ``moved_demo_suite_data``)."""
    data = moved_demo_suite_data(fixtures)
    data["timing"] = {"warmup": 5, "min_timed_frames": 50, "min_seconds": 0.2}  # shorter than the demo's
    data["store_full_frames"] = True  # tests check the pasted-back frames exactly (tests/test_run.py)
    return data


def moved_demo_suite_data(fixtures: Path) -> dict:
    """suites/demo.yaml as the README's demo runs it, but with its fixture paths pointing into ``fixtures`` and
    without its ``output_dir``."""
    data = yaml.safe_load(README_DEMO_SUITE.read_text())

    def move(value):
        if isinstance(value, str) and value.startswith("../data/fixtures/"):
            return str(fixtures / value.removeprefix("../data/fixtures/"))
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    data = move(data)
    data.pop("output_dir", None)
    return data


def short_audio(fixtures: Path, folder: Path, seconds: float, name: str = "speech.wav") -> Path:
    """The first ``seconds`` of a fixture clip's audio, written into ``folder``."""
    import soundfile

    wav, sr = soundfile.read(fixtures / "clip" / name, dtype="float32")
    out = folder / f"{Path(name).stem}_{seconds:g}s.wav"
    soundfile.write(out, wav[: int(seconds * sr)], sr)
    return out


def release_suite_data(fixtures: Path, folder: Path, seconds: float) -> dict:
    """suites/release.yaml on ``fixtures`` with the first ``seconds`` of both speech files (cheaper timing).

    Sync needs the default lag range (+/-15): the reliability threshold is calibrated for it.
    """
    data = yaml.safe_load((REPO / "suites" / "release.yaml").read_text())
    demo = demo_suite_data(fixtures)
    data["models"][0].update(generator=demo["models"][0]["generator"], audio_encoder=demo["models"][0]["audio_encoder"])
    data["inputs"] = [dict(demo["inputs"][0], audio=str(short_audio(fixtures, folder, seconds)))]
    for protocol in data["protocols"]:
        if protocol.get("audio"):
            protocol["audio"] = str(short_audio(fixtures, folder, seconds, "speech_other.wav"))
    data["metrics"] = {"trim_to_shortest": True}
    data["timing"] = {"warmup": 2, "min_timed_frames": 30, "min_seconds": 0}
    data.pop("output_dir")
    return data


# Under xdist (`--dist loadfile --no-loadscope-reorder`, pyproject.toml) the units of work go to the workers in
# collection order, sorted here: these files first, longest first (their seconds, each file under `-n 2` beside
# the rest, 2026-12-07, a busy 2-core VM, wall: a Ray cluster and two runs on it, 250; every backend, 220; the
# demo's lossless numbers, 154; two worker counts, 108; the field's metrics, 101; gates, 130; the protocols,
# 106; the streamed pass, 100; faults, 270 in tests of 15 to 55 s), then the rest as collected. xdist gives each
# worker two units at the start and another whenever it has at most two tests left.
LONGEST_FIRST = ["tests/matrix/test_ray_tasks.py", "tests/pipeline/test_runner.py",
                 "tests/measure/test_stream_lossless_numbers.py", "tests/test_run.py",
                 "tests/matrix/test_executors.py", "tests/measure/test_field.py", "tests/ci/test_gates.py",
                 "tests/pipeline/test_generate_protocols.py", "tests/pipeline/test_generate.py",
                 "tests/measure/test_stream.py", "tests/ci/test_signoff.py", "tests/record/test_runkey.py",
                 "tests/test_faults.py"]
MODULE_SCOPED = re.compile(r"""scope=["'](module|class|package)["']""")


def pytest_collection_modifyitems(config, items):
    rank = {path: k for k, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected


def whole_file(path: str, memo: dict[str, bool] = {}) -> bool:  # noqa: B006 (a memo, on purpose)
    """Whether the test file ``path`` (relative to the repository) defines a fixture made once per module (or
    class): one costly run that several of its tests read, so the file must run whole in one worker."""
    if path not in memo:
        try:
            memo[path] = bool(MODULE_SCOPED.search((REPO / path).read_text(encoding="utf-8")))
        except OSError:
            memo[path] = True
    return memo[path]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: pytest without it runs the tests in one process
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that the tests of a file without module-scoped fixtures go one by one to
    whichever worker is free (``whole_file``): a file's tests that share nothing need not wait for each other in
    one worker while the other worker has finished (tests/test_faults.py's nine runs of evalkit, 15 to 55 s each,
    were the last minutes of a run in one worker). (xdist's own `--dist loadgroup` reads xdist_group marks
    through ``item._nodeid``, which pytest 9 no longer reads: its groups are silently ignored.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SplitWhatSharesNothing(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if whole_file(path) else nodeid

    return SplitWhatSharesNothing(config, log)


def once_per_session(request, tmp_path_factory, name: str, make: Callable[[Path], Path]) -> Path:
    """``make(folder)``'s result, made once per test session however many xdist workers ask for it.

    Under xdist every worker has its own base temporary folder; their common parent holds ``name``: the
    first worker makes it there under a lock and writes ``.made`` (the result's path) last, so a folder left
    half made by a worker that died is made again.
    """
    if not hasattr(request.config, "workerinput"):  # one process: no one to share with
        return make(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    made = folder / ".made"
    with FileLock(f"{folder}.lock"):
        if not made.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            made.write_text(str(make(folder)))
    return Path(made.read_text())


@pytest.fixture(scope="session")
def fixtures_dir(request, tmp_path_factory) -> Path:
    def build(folder: Path) -> Path:
        build_fixtures(folder / "fixtures")
        return folder / "fixtures"

    return once_per_session(request, tmp_path_factory, "fixtures", build)


@pytest.fixture(scope="session")
def demo_suite(fixtures_dir, tmp_path_factory) -> Path:
    return write_suite(tmp_path_factory.mktemp("suite") / "demo.yaml", demo_suite_data(fixtures_dir))


def readme_demo_run(reports: Path = REPO / "reports" / "demo", suite: Path = README_DEMO_SUITE,
                    fixtures: Path = README_FIXTURES) -> tuple[Path | None, str]:
    """The newest complete run of the README's demo in this checkout (``reports/demo/``) that is what the
    ``demo_run`` fixture would make, and why; (None, why not) when there is none.

    The same: the record names ``suites/demo.yaml`` with its current SHA-256; its versions (evalkit's source
    files' SHA-256 among them, and ffmpeg's path: the same virtual environment) and machine are today's; every
    combination is ``ok``; every model and input file it names still has the SHA-256 it recorded, which is the
    one the checkout's fixture manifest lists for it. (``demo_run`` also compares that manifest with the tests'
    own fixtures.)"""
    if os.environ.get("EVALKIT_TESTS_OWN_DEMO"):
        return None, "EVALKIT_TESTS_OWN_DEMO is set"
    runs = sorted((p for p in reports.glob("*/run.json") if not p.parent.name.startswith(".")),
                  reverse=True)  # run ids begin with their UTC time
    if not runs:
        return None, f"no run of `evalkit demo` in {reports}"
    from evalkit.config.suite import load_suite
    from evalkit.record.environment import content_sha256, machine_info, versions
    from evalkit.run import recorded_files

    try:
        manifest = json.loads((fixtures / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return None, f"no fixture manifest in {fixtures}"
    wanted = {"suite": (str(suite), load_suite(suite).sha256), "versions": versions(),
              "machine": machine_info()}
    for run_json in runs:
        try:
            record = json.loads(run_json.read_text())
            same = ((record["suite"]["path"], record["suite"]["sha256"]) == wanted["suite"]
                    and record["versions"] == wanted["versions"] and record["machine"] == wanted["machine"]
                    and all(entry["status"] == "ok" for entry in record["runs"]))
            same = same and all(
                manifest.get(Path(fact["path"]).relative_to(fixtures).as_posix(), {}).get("sha256")
                == fact["sha256"] == content_sha256(Path(fact["path"])) for *_, fact in recorded_files(record))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if same:
            return run_json.parent, (f"reusing the README demo's run {run_json.parent} (same code, suite, fixtures, "
                                     "packages and machine)")
    return None, f"none of the {len(runs)} runs in {reports} was made by this code, suite, fixtures and machine"


def pytest_report_header(config):
    return f"demo run: {readme_demo_run()[1]}"


@pytest.fixture(scope="session")
def demo_run(request, fixtures_dir, tmp_path_factory) -> Path:
    """The demo suite's run, as the README's `evalkit demo` makes it (``readme_demo_run``): a copy of that run
    when it is the same, else made here from the same suite on the tests' fixtures."""
    from evalkit.run import run_suite
    from evalkit.config.suite import load_suite

    def run(folder: Path) -> Path:
        found, _ = readme_demo_run()
        if found is not None and (json.loads((fixtures_dir / "manifest.json").read_text())["files"]
                                  == json.loads((README_FIXTURES / "manifest.json").read_text())["files"]):
            return Path(shutil.copytree(found, folder / "reports" / "demo" / found.name))
        suite = load_suite(write_suite(folder / "demo.yaml", moved_demo_suite_data(fixtures_dir)))
        return run_suite(suite, out=folder / "reports", log=lambda *_: None)

    return once_per_session(request, tmp_path_factory, "demo_run", run)


@pytest.fixture(scope="session")
def demo_compared_with_itself(request, demo_run, tmp_path_factory) -> tuple[int, Path, str, str]:
    """`evalkit compare DEMO DEMO --out FOLDER` of the demo run against itself, made once per session for the
    tests that read it (tests/report/test_verdicts.py, tests/report/test_html_screenshots.py; each ran its own,
    six side-by-side videos of 317 frames): (exit code, FOLDER, stdout, stderr)."""
    import contextlib
    import io

    from evalkit.cli import main

    def compare(folder: Path) -> Path:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["compare", str(demo_run), str(demo_run), "--out", str(folder / "cmp")])
        (folder / "stdout.txt").write_text(out.getvalue())
        (folder / "stderr.txt").write_text(err.getvalue())
        (folder / "code.txt").write_text(str(code))
        return folder

    folder = once_per_session(request, tmp_path_factory, "demo_compare", compare)
    return (int((folder / "code.txt").read_text()), folder / "cmp", (folder / "stdout.txt").read_text(),
            (folder / "stderr.txt").read_text())
