"""Shared test fixtures: evalkit's own fixtures (built once per session), the demo run, real data.

The README's test command runs the test files in pytest-xdist worker processes, one per core
(``-n auto``). The two costly session fixtures, the built fixtures and the demo run, are still made once
per test session: the first worker to need one makes it under a file lock, in a folder every worker sees;
the others wait and reuse it (``once_per_session``). Without xdist (``python -m pytest`` alone) they are
made as usual.
"""

from __future__ import annotations

import os
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
    """suites/demo.yaml with its fixture paths pointing into ``fixtures``."""
    data = yaml.safe_load((REPO / "suites" / "demo.yaml").read_text())

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
    data["timing"] = {"warmup": 5, "min_timed_frames": 50, "min_seconds": 0.2}  # shorter than the demo's
    data["store_full_frames"] = True  # tests check the pasted-back frames exactly (tests/pipeline/test_pipeline.py)
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


# Under xdist each test file goes whole to a worker, in collection order (`--no-loadscope-reorder` in
# pyproject.toml; xdist's default order is the files with the most tests first). These files take the
# longest (the demo run's builder; a Ray cluster; every backend; the bad-input runs: 60 to 100 s each here)
# and go first, so the two workers finish together. In xdist's own order the Ray file, with two tests, went
# last and ran alone for its last minute.
LONGEST_FIRST = ["tests/ci/test_records_ci.py", "tests/matrix/test_ray_tasks.py", "tests/pipeline/test_backends.py",
                 "tests/test_bad_inputs.py"]


def pytest_collection_modifyitems(config, items):
    rank = {path: k for k, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected


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


@pytest.fixture(scope="session")
def demo_run(request, fixtures_dir, tmp_path_factory) -> Path:
    from evalkit.run import run_suite
    from evalkit.config.suite import load_suite

    def run(folder: Path) -> Path:
        suite = load_suite(write_suite(folder / "demo.yaml", demo_suite_data(fixtures_dir)))
        return run_suite(suite, out=folder / "reports", log=lambda *_: None)

    return once_per_session(request, tmp_path_factory, "demo_run", run)
