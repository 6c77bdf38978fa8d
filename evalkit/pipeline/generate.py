"""The generation pipeline: audio and template video in, generated frames and an MP4 out.

Stages, each in its own module::

    audio.load_audio -> mel.mel_spectrogram -> mel.mel_windows_for_frames
      -> audio_encoder.encode_mel_windows (or load_features) -> audio_encoder.pad_feature_ends
      -> feature_windows.feature_window                     (per frame)
    video_decode.template_frames -> crop.CropPreparer.prepare (per frame)
      -> runner.Runner.infer -> paste.Paster -> video_encode.VideoWriter

Frames stream through the stages one at a time, into reused buffers.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import cv2
from tqdm import tqdm

from evalkit.pipeline import audio as audio_stage
from evalkit.pipeline import mel as mel_stage
from evalkit.pipeline.audio_encoder import encode_mel_windows, load_features, pad_feature_ends
from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, check_boxes_fit, load_crop_boxes, load_landmark_boxes
from evalkit.errors import UserError
from evalkit.pipeline.feature_windows import feature_window
from evalkit.metrics.output_stats import OutputStats
from evalkit.media.ffmpeg import VideoInfo, probe_video
from evalkit.pipeline.paste import Paster
from evalkit.pipeline.runner import Runner
from evalkit.pipeline.latency import time_inference
from evalkit.config.suite import InputSpec, ProtocolSpec, TimingSpec
from evalkit.media.decode import FrameReader, ping_pong_index, template_frames
from evalkit.media.encode import VideoWriter

# File names inside one model x backend x input folder.
OUTPUT_MP4 = "output.mp4"  # what a viewer sees: H.264 yuv420p + AAC
FRAMES_FULL = "frames_full.mkv"  # exact generated full frames (FFV1)
FRAMES_INNER = "frames_inner.mkv"  # exact generated inner regions (FFV1), the model's own pixels
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
        windows = mel_stage.mel_windows_for_frames(mel, contract)
    except UserError as exc:
        raise UserError(f"audio {audio_path}: {exc}") from None
    if encoder is not None:
        rows = encode_mel_windows(encoder, windows, contract)
    else:
        rows = load_features(features_npy, len(windows), contract)
    padded = pad_feature_ends(rows, contract)
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


PIPELINE_STAGES = ("decode", "preprocess", "inference", "paste", "encode")


@dataclass
class StageTimes:
    """Wall-clock seconds per stage (time.perf_counter) and raw inference latencies.

    ``seconds`` holds the pipeline stages (PIPELINE_STAGES) and ``output_stats``
    (measurement, not pipeline: left out of end-to-end speed). ``inference_ms``
    has each frame's inference time inside the running pipeline (encoders
    busy beside it); ``timed_ms`` the latencies measured apart (speed.py) and
    ``warmup_ms`` the warm-up runs before them, excluded from statistics.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    inference_ms: list[float] = field(default_factory=list)
    timed_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    timed_seconds: float = 0.0

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt


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


class TemplateStore:
    """Random access to every template frame: decoded once into a temporary memory-mapped file.

    Used when the walk is not one forward pass (a distant reference, a walk that starts later, or more
    output frames than the template has); the plain case streams instead (video_decode.template_frames).
    """

    def __init__(self, video: VideoInfo):
        self._tmp = tempfile.TemporaryDirectory(prefix="evalkit-template-")
        self.frames = np.lib.format.open_memmap(Path(self._tmp.name) / "template.npy", mode="w+", dtype=np.uint8,
                                                shape=(video.frames, video.height, video.width, 3))
        with FrameReader(video) as reader:
            for i in range(video.frames):
                if not reader.read_into(self.frames[i]):
                    raise UserError(f"video {video.path} ended at frame {i}, expected {video.frames} frames")

    def close(self) -> None:
        del self.frames
        self._tmp.cleanup()


def walk_template(video: VideoInfo, n: int, contract: Contract, protocol: ProtocolSpec | None):
    """Yield ``(t_index, frame, r_index, reference_frame)`` for ``n`` output frames (arrays are reused)."""
    distant = protocol is not None and protocol.reference == "distant"
    if not distant and contract.template_start == 0:
        for t, frame in template_frames(video, n):
            yield t, frame, t, frame
        return
    store = TemplateStore(video)
    try:
        for i in range(n):
            t = template_index(i, video.frames, contract)
            r = reference_index(t, video.frames, protocol)
            yield t, store.frames[t], r, store.frames[r]
    finally:
        store.close()


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
        flat = self._diff.reshape(-1)
        self.copy_mse.append(float(np.dot(flat, flat)) / flat.size)
        self.output_sharpness += _laplacian_variance(out_mouth)
        self.template_sharpness += _laplacian_variance(template[self.region])
        self.frames += 1

    def sharpness(self) -> dict:
        n = max(self.frames, 1)
        return {"output": self.output_sharpness / n, "template": self.template_sharpness / n}


def _laplacian_variance(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def generate(runner: Runner, audio: AudioFeatures, prepared: PreparedInput, out_dir: Path, label: str = "",
             timing: TimingSpec | None = None, keep_outputs: int = 8,
             protocol: ProtocolSpec | None = None) -> Generated:
    """Run the whole per-frame pipeline; writes OUTPUT_MP4, FRAMES_FULL and FRAMES_INNER into ``out_dir``.

    The inputs of the first ``timing.timing_inputs`` frames are kept, and once
    the encoders are closed, inference latency is measured on them (speed.py);
    the raw outputs of the first ``keep_outputs`` frames are kept for parity.
    ``protocol`` decides where the reference channels come from (see ``reference_index``).
    """
    timing = timing or TimingSpec()
    contract = runner.contract
    video, boxes = prepared.video, prepared.boxes
    n = audio.frames
    times = StageTimes()
    stats = OutputStats(contract.output_scale)
    preparer, paster = CropPreparer(contract), Paster(contract)
    reference_preparer = CropPreparer(contract)
    checks = MouthChecks(contract)
    indices: list[int] = []
    audio_input = np.empty((1, *contract.audio_input_shape), dtype=np.float32)
    kept = min(timing.timing_inputs, n)
    kept_images = np.empty((kept, *contract.image_input_shape), dtype=np.float32)
    kept_audio = np.empty((kept, *audio_input.shape), dtype=np.float32)
    head = np.empty((min(keep_outputs, n), *contract.output_shape[1:]), dtype=np.float32)
    full = np.empty((video.height, video.width, 3), dtype=np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = video.width, video.height
    with (
        VideoWriter(out_dir / OUTPUT_MP4, w, h, contract.fps, kind="mp4", audio=audio.path or prepared.spec.audio)
        as mp4,
        VideoWriter(out_dir / FRAMES_FULL, w, h, contract.fps, kind="lossless") as lossless_full,
        VideoWriter(out_dir / FRAMES_INNER, contract.inner_width, contract.inner_height, contract.fps,
                    kind="lossless") as lossless_inner,
    ):
        frames = walk_template(video, n, contract, protocol)
        # No bar where stderr is no terminal; none with TQDM_DISABLE set (tqdm's own variable; `evalkit -q`).
        bars_off = True if os.environ.get("TQDM_DISABLE") else None
        for i in tqdm(range(n), desc=label or "generate", unit="frame", leave=False, disable=bars_off):
            t0 = time.perf_counter()
            t_index, frame, r_index, reference_frame = next(frames)
            indices.append(t_index)
            t1 = time.perf_counter()
            image = preparer.prepare(frame, boxes[t_index])
            reference = preparer.inner
            if r_index != t_index:
                image[0, :3] = reference_preparer.prepare(reference_frame, boxes[r_index])[0, :3]
                reference = reference_preparer.inner
            feature_window(audio.features, i, contract, out=audio_input)
            if i < kept:
                kept_images[i], kept_audio[i] = image, audio_input
            t2 = time.perf_counter()
            output = runner.infer(image, audio_input)
            t3 = time.perf_counter()
            stats.update(output)
            if i < len(head):
                head[i] = output[0]
            t4 = time.perf_counter()
            generated = paster.to_uint8(output)
            checks.update(generated, reference, preparer.inner)  # before paste overwrites the crop's inner region
            paster.paste(preparer.crop, generated, frame, boxes[t_index], out=full)
            t5 = time.perf_counter()
            mp4.write(full)
            lossless_full.write(full)
            lossless_inner.write(generated)
            t6 = time.perf_counter()
            times.add("decode", t1 - t0)
            times.add("preprocess", t2 - t1)
            times.add("inference", t3 - t2)
            times.add("output_stats", t4 - t3)
            times.add("paste", t5 - t4)
            times.add("encode", t6 - t5)
            times.inference_ms.append((t3 - t2) * 1e3)
        frames.close()
        closing = time.perf_counter()
    times.add("encode", time.perf_counter() - closing)  # the encoders finishing their queues
    times.warmup_ms, times.timed_ms, times.timed_seconds = time_inference(
        runner, kept_images, kept_audio, timing.warmup, timing.min_timed_frames, timing.min_seconds
    )
    batches = {}
    for size in timing.batch_sizes:
        if size > 1 and runner.dynamic_batch and kept >= size:
            batches[size] = time_inference(runner, batched(kept_images, size), batched(kept_audio, size),
                                           timing.warmup, timing.min_timed_frames // size + 1, timing.min_seconds)[1]
    digest = None
    if len(head) <= kept:
        h = hashlib.sha256()
        h.update(kept_images[: len(head)].tobytes())
        h.update(kept_audio[: len(head)].tobytes())
        digest = h.hexdigest()
    return Generated(n, times, stats, head, digest, batches, checks.copy_mse, checks.sharpness(), indices)


def batched(single: np.ndarray, size: int) -> np.ndarray:
    """[K, 1, ...] inputs regrouped as [K // size, size, ...] batches."""
    k = len(single) // size * size
    return single[:k].reshape(k // size, size, *single.shape[2:])
