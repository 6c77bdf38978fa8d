"""measure/stream.py: the measuring consumers handed to the streamed pass, and the truth side worked out once
per process (TRUTH_MEMO) giving exactly the numbers a fresh run gives."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.config.contract import Contract
from evalkit.config.suite import BackendSpec, InputSpec, MetricsSpec, SessionOptions, TimingSpec
from evalkit.measure import stream
from evalkit.measure.stream import StreamMeasures, truth_key
from evalkit.pipeline.generate import compute_audio_features, generate, prepare_input, template_index
from evalkit.pipeline.runner import OnnxRuntimeRunner
from tests.conftest import short_audio

TIMING = TimingSpec(warmup=0, min_timed_frames=1, min_seconds=0)


def _run(fixtures_dir, tmp_path, model: str, audio_path, name: str) -> dict:
    contract = Contract()
    clip = fixtures_dir / "clip"
    spec = InputSpec(name="clip", video=clip / "talking_head.mkv", audio=audio_path,
                     crop_boxes=clip / "crop_boxes.txt", ground_truth=clip / "talking_head.mkv")
    audio = compute_audio_features(audio_path, fixtures_dir / "models" / "audio_encoder.onnx", None, contract)
    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=1))
    with OnnxRuntimeRunner(fixtures_dir / "models" / f"{model}.onnx", contract, backend) as runner:
        return generate(runner, audio, prepare_input(spec, contract), tmp_path / name, timing=TIMING,
                        measuring=StreamMeasures(contract, MetricsSpec(trim_to_shortest=True),
                                                 spec.ground_truth)).measured


@pytest.mark.slow
def test_a_second_run_on_the_same_frames_reuses_the_truth_side_and_measures_the_same(fixtures_dir, tmp_path):
    audio = short_audio(fixtures_dir, tmp_path, 2.0)
    stream.TRUTH_MEMO.clear()
    alone = _run(fixtures_dir, tmp_path, "noisy", audio, "alone")  # nothing remembered: everything computed
    assert len(stream.TRUTH_MEMO) == 1
    [memo] = stream.TRUTH_MEMO.values()
    assert memo["truth_track"] is not None and memo["truth_track"].frames == alone["compared_frames"]
    stream.TRUTH_MEMO.clear()
    _run(fixtures_dir, tmp_path, "reference", audio, "first")  # another model on the same frames remembers
    [memo] = stream.TRUTH_MEMO.values()
    tracked = memo["truth_track"]
    reused = _run(fixtures_dir, tmp_path, "noisy", audio, "reused")
    assert stream.TRUTH_MEMO[next(iter(stream.TRUTH_MEMO))]["truth_track"] is tracked  # not tracked again
    assert reused["ground_truth_sync"] == alone["ground_truth_sync"]
    assert reused["video_lag"] == alone["video_lag"]
    assert reused["sync"] == alone["sync"]
    assert reused["fidelity"] == alone["fidelity"]
    assert reused["field"] == alone["field"]


def test_the_truth_key_changes_with_the_frames_compared_and_their_boxes(fixtures_dir):
    contract = Contract()
    clip = fixtures_dir / "clip"
    spec = InputSpec(name="clip", video=clip / "talking_head.mkv", audio=clip / "speech.wav",
                     crop_boxes=clip / "crop_boxes.txt")
    prepared = prepare_input(spec, contract)
    video, boxes = prepared.video, prepared.boxes
    indices = [template_index(i, video.frames, contract) for i in range(40)]
    key = truth_key(video, video, 40, boxes, indices, contract)
    assert key == truth_key(video, video, 40, boxes.copy(), list(indices), contract)
    assert key != truth_key(video, video, 39, boxes, indices, contract)
    moved = boxes.copy()
    moved[3] += 1
    assert key != truth_key(video, video, 40, moved, indices, contract)
    assert key != truth_key(video, None, 40, boxes, indices, contract)
    assert key != truth_key(video, video, 40, boxes, indices, Contract(mouth_box=(22, 86, 268, 192)))
    np.testing.assert_array_equal(boxes, prepared.boxes)  # the key reads the boxes, never changes them
