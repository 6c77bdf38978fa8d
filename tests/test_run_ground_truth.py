"""Frame alignment with the ground truth is checked, never assumed; the timing settings are obeyed."""

from __future__ import annotations

import json

import pytest

from evalkit.errors import UserError
from evalkit.run import run_suite
from evalkit.config.suite import load_suite
from evalkit.media.encode import VideoWriter
from tests.conftest import decode, demo_suite_data, short_audio, write_suite


@pytest.fixture
def short_ground_truth(fixtures_dir, tmp_path):
    path = tmp_path / "gt40.mkv"
    with VideoWriter(path, 640, 480, 25, kind="lossless") as writer:
        for frame in decode(fixtures_dir / "clip" / "talking_head.mkv", 40):
            writer.write(frame)
    return path


def one_model_suite(fixtures_dir, tmp_path, **changes):
    data = demo_suite_data(fixtures_dir)
    data["models"] = data["models"][:1]
    data.update(changes.pop("top", {}))
    data["inputs"][0].update(changes)
    return load_suite(write_suite(tmp_path / "s.yaml", data))


def test_mismatched_frame_counts_are_an_error_with_both_numbers(fixtures_dir, tmp_path, short_ground_truth):
    loaded = one_model_suite(fixtures_dir, tmp_path, ground_truth=str(short_ground_truth))
    # Found in preflight, before minutes of generation.
    with pytest.raises(UserError, match=r"gt40\.mkv has 40 frames, the run will generate 317 .*"
                                        r"metrics\.trim_to_shortest: true"):
        run_suite(loaded, out=tmp_path / "r", log=lambda *_: None)
    assert not list((tmp_path / "r").rglob("run.json"))


def test_trimming_when_the_suite_allows_it(fixtures_dir, tmp_path, short_ground_truth):
    # 2 s of the audio: 47 generated frames, still more than the ground truth's 40 (the 317 of the whole clip
    # trimmed the same way, at more cost).
    loaded = one_model_suite(fixtures_dir, tmp_path, ground_truth=str(short_ground_truth),
                             audio=str(short_audio(fixtures_dir, tmp_path, 2)),
                             top={"metrics": {"trim_to_shortest": True},
                                  "timing": {"warmup": 3, "min_timed_frames": 7, "min_seconds": 0}})
    run_dir = run_suite(loaded, out=tmp_path / "r", log=lambda *_: None)
    entry = json.loads((run_dir / "run.json").read_text())["runs"][0]
    assert entry["compared_frames"] == 40 and len(entry["fidelity"]["inner"]["psnr"]) == 40
    # Counts are what the suite asked for; warm-up runs are kept apart from the samples.
    assert len(entry["warmup_ms"]) == 3 and len(entry["timed_ms"]) == 7
    assert entry["summary"]["timed_inferences"] == 7 and entry["summary"]["warmup_iterations"] == 3
