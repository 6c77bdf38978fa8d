"""The generation pipeline: audio and template video in, generated frames and an MP4 out.

Stages, each in its own module::

    audio.load_audio -> mel.mel_spectrogram -> mel.MelWindows
      -> audio_encoder.encode_mel_windows (or load_features) -> audio_encoder.pad_feature_ends
      -> feature_windows.feature_window                     (per frame)
    video_decode.template_frames -> crop.CropPreparer.prepare (per frame)
      -> runner.Runner.infer -> paste.Paster -> video_encode.VideoWriter

Frames stream through the stages one at a time, into reused buffers, and are measured
while in memory (``generate``: one pass; stages overlap in threads, ``stages.py``).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import cv2
from tqdm import tqdm

from evalkit.pipeline import audio as audio_stage
from evalkit.pipeline import mel as mel_stage
from evalkit.pipeline.audio_encoder import (encode_mel_windows, fill_feature_ends, load_features, pad_feature_ends,
                                            padded_rows)
from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, check_boxes_fit, load_crop_boxes, load_landmark_boxes
from evalkit.errors import UserError
from evalkit.pipeline.feature_windows import feature_window
from evalkit.metrics.output_stats import OutputStats
from evalkit.media.ffmpeg import VideoInfo, probe_video
from evalkit.pipeline.paste import Paster
from evalkit.pipeline.runner import Runner
from evalkit.pipeline.latency import latency_pass
from evalkit.config.suite import InputSpec, Mp4Spec, ProtocolSpec, TimingSpec
from evalkit.pipeline.stages import Stages, StageFailed, Timer
from evalkit.media.decode import FrameReader, SpilledFrames, ping_pong_index, template_frames
from evalkit.media.frames import face_window
from evalkit.media.encode import VideoWriter

from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4, SIDE_BY_SIDE  # noqa: F401 (names)
from evalkit.record.vocabulary import PIPELINE_STAGES  # noqa: F401 (re-exported: the stages an entry records)
from evalkit.files import same_file

FPS_TOLERANCE = 0.01  # ffmpeg prints rates rounded to 2 decimals


@dataclass(frozen=True)
class AudioFeatures:
    """The end-padded feature matrix and the number of video frames the audio drives."""

    features: np.ndarray  # [frames + 2 * feature_pad_repeat, feature_dim]
    wav: np.ndarray  # the audio at the contract's sample rate, for sync
    frames: int
    mel_frames: int
    seconds: float
    compute_seconds: float
    path: Path | None = None  # the audio file: the MP4's sound track


def compute_audio_features(audio_path: Path, encoder: Path | None, features_npy: Path | None,
                           contract: Contract) -> AudioFeatures:
    """Stages 1-3: audio file -> padded feature matrix."""
    t0 = time.perf_counter()
    wav = audio_stage.load_audio(audio_path, contract.sample_rate)
    mel = mel_stage.mel_spectrogram(wav, contract)
    try:
        windows = mel_stage.MelWindows(mel, contract)  # views: no [frames, n_mels, window] copy
    except UserError as exc:
        raise UserError(f"audio {audio_path}: {exc}") from None
    if encoder is not None:
        padded, rows = padded_rows(len(windows), contract)
        encode_mel_windows(encoder, windows, contract, out=rows)
        fill_feature_ends(padded, contract)
    else:
        padded = pad_feature_ends(load_features(features_npy, len(windows), contract), contract)
    return AudioFeatures(
        features=padded,
        wav=wav,
        frames=len(padded) if contract.frame_count == "padded_features" else len(windows),
        mel_frames=mel.shape[1],
        seconds=len(wav) / contract.sample_rate,
        compute_seconds=time.perf_counter() - t0,
        path=Path(audio_path),
    )


@dataclass(frozen=True)
class PreparedInput:
    """An input's video facts and crop boxes, checked against the contract."""

    spec: InputSpec
    video: VideoInfo
    boxes: np.ndarray


def prepare_input(spec: InputSpec, contract: Contract) -> PreparedInput:
    video = probe_video(spec.video)
    if spec.dataset is not None and abs(video.fps - contract.fps) > FPS_TOLERANCE:
        raise UserError(
            f"input '{spec.name}': dataset {spec.dataset}: its frames are read at {video.fps:g} fps (SyncTalk_2D's "
            f"rate), the contract drives {contract.fps:g} fps (extract the frames at {video.fps:g} fps, or set "
            f"contract.fps: {video.fps:g})"
        )
    if abs(video.fps - contract.fps) > FPS_TOLERANCE:
        raise UserError(
            f"input '{spec.name}': video {spec.video} is {video.fps:g} fps, the contract drives {contract.fps:g} fps "
            f"(re-encode the video, e.g. ffmpeg -i IN -r {contract.fps:g} OUT, or set contract.fps)"
        )
    source = spec.crop_boxes or spec.landmarks
    boxes = load_crop_boxes(spec.crop_boxes) if spec.crop_boxes else load_landmark_boxes(spec.landmarks, contract)
    if len(boxes) < video.frames:
        raise UserError(f"{source}: {len(boxes)} crop boxes for a video of {video.frames} frames (one per frame)")
    check_boxes_fit(boxes, video.width, video.height, source)
    return PreparedInput(spec=spec, video=video, boxes=boxes)


@dataclass
class StageTimes:
    """Wall-clock seconds per stage (time.perf_counter) and raw inference latencies.

    ``seconds`` holds the pipeline stages (PIPELINE_STAGES) and ``output_stats``
    (measurement, not pipeline: left out of end-to-end speed). The stages run
    in threads that overlap, so each is the time its stage spent working, and
    ``pipeline_seconds`` the streamed pass's wall clock (first frame decoded to
    encoders closed). ``inference_ms`` has each frame's inference time inside
    the running pipeline (the other stages busy beside it); ``timed_ms`` the
    latencies measured apart (latency.py) and ``warmup_ms`` the warm-up runs
    before them, excluded from statistics.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # the same stages' CPU time (time.thread_time)
    inference_ms: list[float] = field(default_factory=list)
    timed_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    timed_seconds: float = 0.0
    pipeline_seconds: float = 0.0
    timed_cpu_ms: list[float] = field(default_factory=list)  # process CPU ms of each timed call (latency.py)
    timing_load: dict = field(default_factory=dict)  # the machine's load while timing (latency.machine_load)

    def add(self, stage: str, dt: float, cpu: float | None = None) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
        if cpu is not None:
            self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + cpu


@dataclass
class Generated:
    """What one generation produced besides its files."""

    frames: int
    times: StageTimes
    stats: OutputStats
    head_outputs: np.ndarray  # raw outputs of the first frames, [K, 3, H, W] float32, for parity
    head_inputs_sha256: str | None  # SHA-256 of those frames' image and audio inputs (same inputs, same hash)
    batch_timings: dict = field(default_factory=dict)  # batch size -> latency samples (ms per batch)
    copy_mse: list[float] = field(default_factory=list)  # per frame: output mouth vs the reference channels' mouth
    sharpness: dict = field(default_factory=dict)  # mean Laplacian variance of the mouth: output and template
    template_indices: list[int] = field(default_factory=list)  # template frame shown at each output frame
    measured: dict = field(default_factory=dict)  # fidelity and sync, as measure.outputs.measure_run returns


def template_index(frame: int, template_frames: int, contract: Contract) -> int:
    """The template frame that output ``frame`` re-draws: the ping-pong walk, from ``contract.template_start``."""
    return ping_pong_index(frame + contract.template_start, template_frames)


def reference_index(t_index: int, template_frames: int, protocol: ProtocolSpec | None) -> int:
    """The template frame whose unmasked pixels fill the reference channels.

    ``same`` (and every protocol but distant reconstruction): the frame itself. ``distant``: the frame half
    the template away, (t + T // 2) mod T, which is at least T // 2 frames from t in either direction.
    """
    if protocol is None or protocol.reference == "same":
        return t_index
    return (t_index + template_frames // 2) % template_frames


def check_protocol(prepared: PreparedInput, protocol: ProtocolSpec) -> None:
    """A distant reference needs a template at least twice ``min_distance`` long."""
    frames = prepared.video.frames
    if protocol.reference == "distant" and frames // 2 < protocol.min_distance:
        raise UserError(
            f"protocol '{protocol.name}': input '{prepared.spec.name}' has a template of {frames} frames; a distant "
            f"reference at least {protocol.min_distance} frames away needs at least {2 * protocol.min_distance} "
            "(lower min_distance or use a longer video)"
        )


def walk_template(video: VideoInfo, n: int, contract: Contract, protocol: ProtocolSpec | None):
    """Yield ``(t_index, frame, r_index, reference_frame)`` for ``n`` output frames (arrays are reused).

    The plain walk streams (``template_frames``); a distant reference or a walk that starts later reads
    the template at random (``SpilledFrames``).
    """
    distant = protocol is not None and protocol.reference == "distant"
    if not distant and contract.template_start == 0:
        for t, frame in template_frames(video, n):
            yield t, frame, t, frame
        return
    frame = np.empty((video.height, video.width, 3), np.uint8)
    reference = np.empty_like(frame)
    with SpilledFrames(video) as spill:
        for i in range(n):
            t = template_index(i, video.frames, contract)
            r = reference_index(t, video.frames, protocol)
            spill.read_into(t, frame)
            yield t, frame, r, (spill.read_into(r, reference) if r != t else frame)


class MouthChecks:
    """Per-frame measures of the generated mouth that need the model's inputs: copy and sharpness.

    - copy: mean squared error between the output's mouth region and the mouth region of the unmasked
      reference channels it was given (uint8 RGB). A model that copies its input scores 0 (PSNR inf).
    - sharpness: variance of the Laplacian of the grey mouth region, for the output and for the template
      frame it re-draws (a no-reference measure: a blurry mouth scores lower than the template's).
    """

    def __init__(self, contract: Contract):
        x1, y1, x2, y2 = contract.mouth_box
        self.region = np.s_[y1:y2, x1:x2]
        self._diff = np.empty((y2 - y1, x2 - x1, 3), np.float32)
        self.copy_mse: list[float] = []
        self.output_sharpness = 0.0
        self.template_sharpness = 0.0
        self.frames = 0

    def update(self, generated: np.ndarray, reference: np.ndarray, template: np.ndarray) -> None:
        out_mouth = generated[self.region]
        np.subtract(out_mouth, reference[self.region], out=self._diff, dtype=np.float32)
        np.square(self._diff, out=self._diff)
        self.copy_mse.append(float(self._diff.sum(dtype=np.float64)) / self._diff.size)
        self.output_sharpness += _laplacian_variance(out_mouth)
        self.template_sharpness += _laplacian_variance(template[self.region])
        self.frames += 1

    def sharpness(self) -> dict:
        n = max(self.frames, 1)
        return {"output": self.output_sharpness / n, "template": self.template_sharpness / n}


def _laplacian_variance(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


SLOTS = 6  # frames in flight between the stages: enough to keep every stage busy, few enough to stay small


class FrameSlot:
    """One frame's buffers on its way through the stages (reused: SLOTS of them per pass)."""

    def __init__(self, video: VideoInfo, contract: Contract, distant: bool, own_truth: bool):
        shape, inner = (video.height, video.width, 3), (contract.inner_height, contract.inner_width, 3)
        self.frame = np.empty(shape, np.uint8)  # the template frame re-drawn
        self.reference = np.empty(shape, np.uint8) if distant else None  # the distant reference frame
        self.full = np.empty(shape, np.uint8)  # the output, pasted back
        self.inner = np.empty(inner, np.uint8)  # the model's output as pixels
        self.template_inner = np.empty(inner, np.uint8)  # the template's inner region, as cut for the model
        self.reference_inner = np.empty(inner, np.uint8) if distant else self.template_inner
        self.raw: np.ndarray | None = None  # the model's raw output
        self.crop: np.ndarray | None = None  # its own copy of the crop, when frames wait for a batch
        # the ground truth's frame: its own buffer when read from its own file, else the template frame itself
        self.truth = np.empty(shape, np.uint8) if own_truth else None
        self.index = self.t_index = self.r_index = 0
        self._left = 0
        self._lock = threading.Lock()

    def hand_to(self, consumers: int) -> None:
        self._left = consumers

    def done(self) -> bool:
        """One consumer finished with the slot; True when it was the last."""
        with self._lock:
            self._left -= 1
            return self._left == 0


def generate(runner: Runner, audio: AudioFeatures, prepared: PreparedInput, out_dir: Path, label: str = "",
             timing: TimingSpec | None = None, keep_outputs: int = 8, protocol: ProtocolSpec | None = None,
             measuring=None, store_full_frames: bool = False, batch_size: int = 1,
             mp4: Mp4Spec | None = None) -> Generated:
    """The streamed pass: every frame goes decode -> prepare -> infer -> paste -> {encode, measure} once.

    Writes OUTPUT_MP4 and FRAMES_INNER (the model's own pixels, lossless) into ``out_dir``; FRAMES_FULL
    too with ``store_full_frames`` (a full frame is the template plus the pasted inner region: the views
    recompute it instead of storing it). Frames are measured while they are in memory: copy and sharpness
    checks and output statistics here, and whatever ``measuring`` (``measure.stream.StreamMeasures``, handed
    in by the caller; None: nothing more) measures: fidelity against its ground truth per region, sync
    thumbnails, the field's metrics; then the viewer's picture from output.mp4 (and the side-by-side video,
    from those same frames).

    Threads: template (and ground-truth) decoding, the model (this thread), encoding, and three measuring
    threads (the face regions and statistics; the full frame and the copy checks; the field's metrics) overlap, joined by bounded
    queues (``stages.Stages``). Afterwards, with the encoders closed, inference latency is measured on the
    first ``timing.timing_inputs`` frames' inputs (latency.py); the raw outputs of the first
    ``keep_outputs`` frames are kept for parity. ``protocol`` decides where the reference channels come
    from (see ``reference_index``). With ``batch_size`` > 1 (a generator with a dynamic batch axis), frames
    are inferred that many at a time; each frame's ``inference_ms`` is its share of its batch.
    """
    timing = timing or TimingSpec()
    mp4 = mp4 or Mp4Spec()
    contract = runner.contract
    video, boxes = prepared.video, prepared.boxes
    n = audio.frames
    distant = protocol is not None and protocol.reference == "distant"
    times = StageTimes()
    stats = OutputStats(contract.output_scale)
    preparer, paster = CropPreparer(contract), Paster(contract)
    reference_preparer = CropPreparer(contract) if distant else None
    checks = MouthChecks(contract)
    indices: list[int] = []
    audio_input = np.empty((1, *contract.audio_input_shape), dtype=np.float32)
    kept = min(timing.timing_inputs, n)
    kept_images = np.empty((kept, *contract.image_input_shape), dtype=np.float32)
    kept_audio = np.empty((kept, *audio_input.shape), dtype=np.float32)
    head = np.empty((min(keep_outputs, n), *contract.output_shape[1:]), dtype=np.float32)
    compared, truth_info, ground_truth = n, None, None
    if measuring is not None:
        compared = measuring.begin(video, n, boxes, [template_index(i, video.frames, contract) for i in range(n)])
        truth_info, ground_truth = measuring.truth_info, measuring.ground_truth
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = video.width, video.height
    # The ground truth is often the template video itself (reconstruction of the recorded clip): while the
    # walk shows template frame i at output frame i, its frame is the one already decoded for the model.
    truth_is_template = (truth_info is not None and same_file(ground_truth, video.path)
                         and contract.template_start == 0 and compared <= video.frames)
    own_truth = truth_info is not None and not truth_is_template
    # a batch holds its frames' slots until it is inferred: room for a whole batch and the next frames
    slots = [FrameSlot(video, contract, distant, own_truth)
             for _ in range(min(max(SLOTS, batch_size + 2), max(n, 1)))]
    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)
    ready: queue.Queue = queue.Queue(len(slots))
    to_encode: queue.Queue = queue.Queue(len(slots))
    to_measure: queue.Queue = queue.Queue(len(slots))
    to_measure_full: queue.Queue = queue.Queue(len(slots))
    to_measure_field: queue.Queue = queue.Queue(len(slots))
    consumers = [to_encode, to_measure, to_measure_full] + ([to_measure_field] if measuring is not None else [])
    stages = Stages()

    def release(slot: FrameSlot) -> None:
        if slot.done():
            free.put(slot)

    def decode() -> None:
        frames = walk_template(video, n, contract, protocol)
        with ExitStack() as stack:
            stack.callback(frames.close)
            truth_reader = None
            if own_truth:
                truth_reader = stack.enter_context(FrameReader(truth_info))
            for i in range(n):
                slot = stages.get(free)
                with Timer(stages, "decode"):
                    t_index, frame, r_index, reference_frame = next(frames)
                    np.copyto(slot.frame, frame)
                    if distant:
                        np.copyto(slot.reference, reference_frame)
                    slot.index, slot.t_index, slot.r_index = i, t_index, r_index
                    if truth_info is not None and i < compared:
                        if truth_is_template:
                            slot.truth = slot.frame  # template frame t_index == i (the paste leaves it)
                        elif not truth_reader.read_into(slot.truth):
                            raise UserError(f"ground truth {ground_truth} ended after {i} frames, expected {compared}")
                stages.put(ready, slot)

    def encode(writers: list) -> None:
        mp4, inner_writer = writers[0], writers[1]
        full_writer = writers[2] if len(writers) > 2 else None
        for _ in range(n):
            slot = stages.get(to_encode)
            with Timer(stages, "encode"):
                mp4.write(slot.full)
                inner_writer.write(slot.inner)
                if full_writer is not None:
                    full_writer.write(slot.full)
            release(slot)

    def measure_face() -> None:
        """Regions inner and mouth, sync thumbnails, output statistics."""
        cropper = CropPreparer(contract) if own_truth else None  # the truth's own inner region, when it has a file
        for _ in range(n):
            slot = stages.get(to_measure)
            with Timer(stages, "measure"):
                stats.update(slot.raw)
                if measuring is not None and slot.index < compared:
                    truth_inner = None
                    if truth_is_template:  # the ground truth's inner region is the one cut for the model
                        truth_inner = slot.template_inner
                    elif truth_info is not None:
                        truth_inner = cropper.crop_frame(slot.truth, boxes[slot.t_index])
                    measuring.face(slot.inner, truth_inner)
            release(slot)

    def measure_full() -> None:
        """Region full (the pasted-back frame), copy and sharpness checks: beside measure_face."""
        for _ in range(n):
            slot = stages.get(to_measure_full)
            with Timer(stages, "measure_full"):
                checks.update(slot.inner, slot.reference_inner, slot.template_inner)
                if truth_info is not None and slot.index < compared:
                    measuring.full(slot.full, slot.truth)
            release(slot)

    def measure_field() -> None:
        """The field's metrics (measure.field.FieldMeasures): beside the others."""
        for _ in range(n):
            slot = stages.get(to_measure_field)
            with Timer(stages, "measure_field"):
                truth = slot.truth if truth_info is not None and slot.index < compared else None
                measuring.field(slot.index, slot.inner, slot.frame, slot.template_inner, slot.full, truth)
            release(slot)

    if batch_size > 1 and not runner.dynamic_batch:
        raise UserError(f"batch_size {batch_size}: generator {runner.model_path} has a fixed batch axis of 1 "
                        "(export it with a dynamic batch axis, or set the backend's batch_size: 1)")
    if batch_size > 1:
        batch_images = np.empty((batch_size, *contract.image_input_shape[1:]), np.float32)
        batch_audio = np.empty((batch_size, *contract.audio_input_shape), np.float32)
        for slot in slots:
            slot.crop = np.empty((contract.crop_size, contract.crop_size, 3), np.uint8)

    def finish(slot: FrameSlot, output: np.ndarray, crop: np.ndarray, infer_seconds: float,
               infer_cpu: float) -> None:
        """The model's output for one frame: kept, turned into pixels, pasted, handed to encode and measure."""
        t3, c3 = time.perf_counter(), time.thread_time()
        slot.raw = output
        if slot.index < len(head):
            head[slot.index] = output[0]
        np.copyto(slot.inner, paster.to_uint8(output))
        paster.paste(crop, slot.inner, slot.frame, boxes[slot.t_index], out=slot.full)
        indices.append(slot.t_index)
        slot.hand_to(len(consumers))
        times.add("inference", infer_seconds, infer_cpu)
        times.inference_ms.append(infer_seconds * 1e3)
        times.add("paste", time.perf_counter() - t3, time.thread_time() - c3)
        for consumer in consumers:
            stages.put(consumer, slot)

    mp4_path = out_dir / OUTPUT_MP4
    # No bar where stderr is no terminal; none with TQDM_DISABLE set (tqdm's own variable; `evalkit -q`).
    bars_off = True if os.environ.get("TQDM_DISABLE") else None
    start = time.perf_counter()
    with ExitStack() as writers_stack:
        writers = [
            writers_stack.enter_context(VideoWriter(mp4_path, w, h, contract.fps, kind="mp4",
                                                    audio=audio.path or prepared.spec.audio, crf=mp4.crf,
                                                    preset=mp4.preset)),
            writers_stack.enter_context(VideoWriter(out_dir / FRAMES_INNER, contract.inner_width,
                                                    contract.inner_height, contract.fps, kind="frames")),
        ]
        if store_full_frames:
            writers.append(writers_stack.enter_context(VideoWriter(out_dir / FRAMES_FULL, w, h, contract.fps,
                                                                   kind="frames")))
        stages.start("decode", decode)
        stages.start("encode", lambda: encode(writers))
        stages.start("measure", measure_face)
        stages.start("measure_full", measure_full)
        if measuring is not None:
            stages.start("measure_field", measure_field)
        try:
            pending: list[FrameSlot] = []  # prepared, waiting for their batch to be inferred
            for i in tqdm(range(n), desc=label or "generate", unit="frame", leave=False, disable=bars_off):
                slot = stages.get(ready)
                t1, c1 = time.perf_counter(), time.thread_time()
                image = preparer.prepare(slot.frame, boxes[slot.t_index])
                np.copyto(slot.template_inner, preparer.inner)
                if distant:
                    image[0, :3] = reference_preparer.prepare(slot.reference, boxes[slot.r_index])[0, :3]
                    np.copyto(slot.reference_inner, reference_preparer.inner)
                feature_window(audio.features, i, contract, out=audio_input)
                if i < kept:
                    kept_images[i], kept_audio[i] = image, audio_input
                if batch_size == 1:
                    t2, c2 = time.perf_counter(), time.thread_time()
                    times.add("preprocess", t2 - t1, c2 - c1)
                    output = runner.infer(image, audio_input)
                    finish(slot, output, preparer.crop, time.perf_counter() - t2, time.thread_time() - c2)
                    continue
                batch_images[len(pending)], batch_audio[len(pending)] = image[0], audio_input[0]
                np.copyto(slot.crop, preparer.crop)
                pending.append(slot)
                times.add("preprocess", time.perf_counter() - t1, time.thread_time() - c1)
                if len(pending) == batch_size or i == n - 1:
                    k = len(pending)
                    t2, c2 = time.perf_counter(), time.thread_time()
                    output = runner.infer(batch_images[:k], batch_audio[:k])
                    share = (time.perf_counter() - t2) / k  # each frame's share of its batch
                    cpu_share = (time.thread_time() - c2) / k
                    for j, done in enumerate(pending):
                        finish(done, output[j : j + 1], done.crop, share, cpu_share)
                    pending.clear()
        except StageFailed:
            pass  # a stage failed: join() raises its error
        except BaseException as exc:
            stages.fail(exc)
        stages.join()
        closing = time.perf_counter()
    stages.timed("encode", time.perf_counter() - closing)  # the encoders finishing their queues
    times.pipeline_seconds = time.perf_counter() - start
    for name in ("decode", "encode"):
        times.add(name, stages.busy.get(name, 0.0), stages.cpu.get(name, 0.0))
    for name in ("measure", "measure_full", "measure_field"):  # output_stats' wall time is the sum (below); CPU apart
        times.cpu_seconds[name] = stages.cpu.get(name, 0.0)
    times.add("output_stats", sum(stages.busy.get(name, 0.0) for name in ("measure", "measure_full", "measure_field")))
    timed, batches, times.cpu_seconds["latency"] = latency_pass(runner, kept_images, kept_audio, timing)
    times.warmup_ms, times.timed_ms, times.timed_seconds = timed.warmup_ms, timed.timed_ms, timed.seconds
    times.timed_cpu_ms, times.timing_load = timed.cpu_ms, timed.load
    t0 = time.perf_counter()
    measured: dict = {}
    if measuring is not None:
        if truth_info is not None:
            c_viewer = time.process_time()
            measuring.viewer(mp4_path, out_dir / SIDE_BY_SIDE, audio.path or prepared.spec.audio,
                             face_window(boxes[indices[:compared]], w, h))
            # the viewer pass's threads are the only ones working here: the process's CPU is theirs
            times.cpu_seconds["viewer"] = time.process_time() - c_viewer
        c_result = time.process_time()
        measured = measuring.result(audio.wav, contract.sample_rate)
        times.cpu_seconds["sync"] = time.process_time() - c_result
    times.add("output_stats", time.perf_counter() - t0)
    digest = None
    if len(head) <= kept:
        sha = hashlib.sha256()
        sha.update(kept_images[: len(head)].tobytes())
        sha.update(kept_audio[: len(head)].tobytes())
        digest = sha.hexdigest()
    return Generated(n, times, stats, head, digest, batches, checks.copy_mse, checks.sharpness(), indices,
                     measured)
