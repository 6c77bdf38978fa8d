"""The streamed pass (pipeline.generate): frames measured in memory are the frames written to disk, stages
fail together, batches change nothing, and the template is read at random without mapping it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from evalkit.measure.stream import StreamMeasures
from evalkit.config.contract import Contract
from evalkit.config.suite import BackendSpec, InputSpec, MetricsSpec, ProtocolSpec, SessionOptions, TimingSpec
from evalkit.measure.outputs import measure_run
from evalkit.media.decode import SpilledFrames, template_frames
from evalkit.media.ffmpeg import probe_video
from evalkit.media.frames import face_window
from evalkit.pipeline.generate import compute_audio_features, generate, prepare_input
from evalkit.pipeline.runner import OnnxRuntimeRunner
from evalkit.pipeline.stages import StageFailed, Stages
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4, SIDE_BY_SIDE
from tests.conftest import decode, short_audio

TIMING = TimingSpec(warmup=1, min_timed_frames=3, min_seconds=0)


def _generate(fixtures_dir, tmp_path, model: str, seconds: float, face: bool = True, **options):
    """``face=False``: without dlib's landmarks and identity (``metrics.face``), for the tests that compare
    pixels and the fidelity numbers only."""
    contract = Contract()
    clip = fixtures_dir / "clip"
    audio_path = short_audio(fixtures_dir, tmp_path, seconds)
    spec = InputSpec(name="clip", video=clip / "talking_head.mkv", audio=audio_path, crop_boxes=clip / "crop_boxes.txt",
                     ground_truth=clip / "talking_head.mkv")
    prepared = prepare_input(spec, contract)
    audio = compute_audio_features(audio_path, fixtures_dir / "models" / "audio_encoder.onnx", None, contract)
    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=1))
    out = tmp_path / f"{model}-{options.get('batch_size', 1)}"
    metrics = MetricsSpec(trim_to_shortest=True, face=face)
    with OnnxRuntimeRunner(fixtures_dir / "models" / f"{model}.onnx", contract, backend) as runner:
        generated = generate(runner, audio, prepared, out, timing=TIMING,
                             measuring=StreamMeasures(contract, metrics, spec.ground_truth), **options)
    return generated, out, prepared, audio, contract, metrics


@pytest.mark.slow
def test_measured_in_memory_equals_measured_from_the_written_files(fixtures_dir, tmp_path):
    """The stream measures frames it never wrote back: the same numbers must come from decoding its lossless
    files (lossless inner and full frames, the MP4) and measuring them, an independent path through ffmpeg."""
    generated, out, prepared, audio, contract, metrics = _generate(fixtures_dir, tmp_path, "noisy", 2.0,
                                                                   store_full_frames=True)
    from_files = measure_run(out, prepared.spec.ground_truth, prepared.boxes, generated.template_indices, contract,
                             generated.frames, metrics, audio.wav, contract.sample_rate)
    streamed = generated.measured
    assert streamed["compared_frames"] == from_files["compared_frames"] == generated.frames == 47
    for region in ("inner", "mouth", "full", "mp4_face"):
        for name in ("psnr", "ssim"):
            assert streamed["fidelity"][region][name] == from_files["fidelity"][region][name], (region, name)
    assert streamed["sync"] == from_files["sync"]
    # the field's metrics, measured in the stream from the frames in memory, are those of a second pass over the
    # written files (CPBD; LMD, mouth opening and identity where evalkit[face] is installed)
    from evalkit.measure.field import measure_field

    field_from_files = measure_field(out, generated.frames, generated.template_indices, prepared.boxes,
                                     prepared.video.path, prepared.spec.ground_truth, contract, metrics, audio.wav,
                                     streamed["sync"])
    assert streamed["field"] == field_from_files
    assert len(streamed["field"]["cpbd_mouth"]) > 0
    # the side-by-side video was written from the viewer pass's frames: ground truth | output around the face,
    # every frame
    x0, y0, x1, y1 = face_window(prepared.boxes[generated.template_indices], prepared.video.width,
                                 prepared.video.height)
    assert x1 - x0 < prepared.video.width  # the fixture's face does not fill the frame: a real cut
    info = probe_video(out / SIDE_BY_SIDE)
    assert (info.width, info.height, info.frames) == (2 * (x1 - x0), y1 - y0, generated.frames)
    both = decode(out / SIDE_BY_SIDE).astype(np.float64)
    truth = decode(prepared.spec.ground_truth, generated.frames)[:, y0:y1, x0:x1]
    mp4 = decode(out / OUTPUT_MP4)[:, y0:y1, x0:x1]
    def db(a, b):
        return 10 * np.log10(255**2 / np.mean((a - b) ** 2))

    for half, source in ((both[:, :, : x1 - x0], truth), (both[:, :, x1 - x0 :], mp4)):
        assert db(half, source) > 30  # the same pictures, re-encoded once
    shifted = decode(prepared.spec.ground_truth, generated.frames)[:, y0 - 4 : y1 - 4, x0 + 4 : x1 + 4]
    assert db(both[:, :, : x1 - x0], shifted) < db(both[:, :, : x1 - x0], truth) - 10  # the very window, not near it
    assert (out / FRAMES_FULL).is_file() and (out / FRAMES_INNER).is_file() and (out / OUTPUT_MP4).is_file()


@pytest.mark.slow
def test_full_frames_are_not_stored_unless_asked(fixtures_dir, tmp_path):
    generated, out, *_ = _generate(fixtures_dir, tmp_path, "reference", 1.0, face=False)
    assert not (out / FRAMES_FULL).exists()
    assert (out / FRAMES_INNER).is_file()
    assert generated.times.pipeline_seconds > 0


@pytest.mark.slow
def test_batches_give_the_frames_one_at_a_time_gives(fixtures_dir, tmp_path):
    """mobile-unet has a dynamic batch axis: batches must give the same pixels and numbers as single frames
    (24 frames for 1 s in batches of 4: 6 full batches; 29 frames for 1.2 s in batches of 8, more than the
    stages' usual frames in flight: 3 full batches and a last one of 5)."""
    for seconds, batch in ((1.0, 4), (1.2, 8)):
        (tmp_path / f"a{seconds}").mkdir()
        (tmp_path / f"b{seconds}").mkdir()
        one, out_one, *_ = _generate(fixtures_dir, tmp_path / f"a{seconds}", "mobile_unet", seconds, face=False)
        four, out_four, *_ = _generate(fixtures_dir, tmp_path / f"b{seconds}", "mobile_unet", seconds, face=False,
                                       batch_size=batch)
        assert one.frames == four.frames
        np.testing.assert_array_equal(decode(out_one / FRAMES_INNER), decode(out_four / FRAMES_INNER))
        assert one.measured["fidelity"] == four.measured["fidelity"]
        assert len(four.times.inference_ms) == four.frames


def test_a_failing_stage_stops_the_others_and_its_error_surfaces():
    stages = Stages()
    import queue

    q: queue.Queue = queue.Queue(1)
    consumer_stopped = threading.Event()

    def producer():
        stages.put(q, 1)
        raise ValueError("decoder broke at frame 1")

    def consumer():
        try:
            while True:
                stages.get(q)
        finally:
            consumer_stopped.set()

    stages.start("decode", producer)
    stages.start("measure", consumer)
    with pytest.raises(ValueError, match="decoder broke at frame 1"):
        stages.join()
    assert consumer_stopped.is_set()
    with pytest.raises(StageFailed):
        stages.get(q)  # everyone sees the abort


def test_the_callers_own_failure_stops_the_stages():
    stages = Stages()
    import queue

    q: queue.Queue = queue.Queue()
    stages.start("encode", lambda: stages.get(q))  # would wait forever
    stages.fail(KeyError("model output missing"))
    with pytest.raises(KeyError):
        stages.join()


def test_spilled_frames_read_back_any_frame_exactly(fixtures_dir):
    info = probe_video(fixtures_dir / "clip" / "talking_head.mkv")
    every = decode(info.path)
    buffer = np.empty_like(every[0])
    with SpilledFrames(info) as spill:
        for index in (info.frames - 1, 0, 157, 3, 157):
            np.testing.assert_array_equal(spill.read_into(index, buffer), every[index])


def test_the_walk_back_reads_the_spill(fixtures_dir):
    info = probe_video(fixtures_dir / "clip" / "talking_head.mkv")
    every = decode(info.path)
    n = info.frames + 40
    walked = [(t, frame.copy()) for t, frame in template_frames(info, n)]
    assert [t for t, _ in walked[info.frames - 2: info.frames + 2]] == [info.frames - 2, info.frames - 1,
                                                                       info.frames - 2, info.frames - 3]
    for t, frame in walked[info.frames:]:
        np.testing.assert_array_equal(frame, every[t])


def test_distant_reference_protocol_reads_the_frame_half_the_template_away(fixtures_dir, tmp_path):
    """Through the spill: the reference channels hold frame (t + T/2) mod T, so a copying model's output
    (its reference channels) is that frame's inner region."""
    contract = Contract()
    clip = fixtures_dir / "clip"
    audio_path = short_audio(fixtures_dir, tmp_path, 0.6)
    spec = InputSpec(name="clip", video=clip / "talking_head.mkv", audio=audio_path, crop_boxes=clip / "crop_boxes.txt")
    prepared = prepare_input(spec, contract)
    audio = compute_audio_features(audio_path, fixtures_dir / "models" / "audio_encoder.onnx", None, contract)
    protocol = ProtocolSpec(name="distant", reference="distant")
    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=1))
    with OnnxRuntimeRunner(fixtures_dir / "models" / "copycat.onnx", contract, backend) as runner:
        generated = generate(runner, audio, prepared, tmp_path / "out", timing=TIMING, protocol=protocol)
    inner = decode(tmp_path / "out" / FRAMES_INNER)
    frames = decode(clip / "talking_head.mkv")
    from evalkit.pipeline.crop import CropPreparer

    cropper = CropPreparer(contract)
    half = prepared.video.frames // 2
    for i in range(generated.frames):
        r = (i + half) % prepared.video.frames
        np.testing.assert_array_equal(inner[i], cropper.crop_frame(frames[r], prepared.boxes[r]))


@pytest.mark.slow
def test_a_ground_truth_in_its_own_file_measures_as_the_template_shortcut_does(fixtures_dir, tmp_path):
    """The ground truth read from its own file (its own decoder) and the template frames taken as the ground
    truth when both are the same video must give the same numbers."""
    import shutil

    copy = tmp_path / "truth_copy.mkv"
    shutil.copy(fixtures_dir / "clip" / "talking_head.mkv", copy)
    shortcut, *_ = _generate(fixtures_dir, tmp_path, "noisy", 1.0)
    contract = Contract()
    clip = fixtures_dir / "clip"
    audio_path = short_audio(fixtures_dir, tmp_path, 1.0)
    spec = InputSpec(name="clip", video=clip / "talking_head.mkv", audio=audio_path, crop_boxes=clip / "crop_boxes.txt",
                     ground_truth=copy)
    audio = compute_audio_features(audio_path, fixtures_dir / "models" / "audio_encoder.onnx", None, contract)
    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=1))
    with OnnxRuntimeRunner(fixtures_dir / "models" / "noisy.onnx", contract, backend) as runner:
        own = generate(runner, audio, prepare_input(spec, contract), tmp_path / "own", timing=TIMING,
                       measuring=StreamMeasures(contract, MetricsSpec(trim_to_shortest=True), copy))
    assert own.measured["compared_frames"] == shortcut.measured["compared_frames"] == shortcut.frames > 0
    assert own.measured["fidelity"] == shortcut.measured["fidelity"]
    assert own.measured["ground_truth_sync"] == shortcut.measured["ground_truth_sync"]
