"""The talking-head field's own metrics of a generated run: one pass over its frames after generation.

What it measures (``metrics.face``, ``metrics.lpips``, ``metrics.fid``, ``metrics.fvd`` of the suite):

- CPBD (``metrics.cpbd``) of the output's mouth region (the contract's ``mouth_box`` in the lossless inner
  region) and of the template frame's it re-drew, on ``CPBD_SAMPLES`` frames spread over the run: a no-reference
  blur measure beside ``mouth_sharpness_ratio``, for every run, with or without ground truth. A mouth box smaller
  than CPBD's 64 px blocks (the 160 px family's, 123 x 53) is judged in blocks of its smaller side.
- With ``evalkit[face]`` installed (``metrics.face``): dlib's 68 landmarks of every output full frame (the template
  with the output pasted back) and of the ground truth's frame, in the face rectangle that the crop box gives
  (``face_rect_from_box``: the box-to-rectangle relation calibrated once per run by the detector on the first frame
  that shows a face; the detector runs on no other frame). LMD per frame over the mouth points 48-67 and over all
  68, in pixels of the full frame; the mouth opening from landmarks (inner-lip height over mouth width) as a
  second sync signal against the audio (``metrics.sync.sync_of_signals``); identity: the descriptor distance of
  the output's face to its template frame's and to the ground truth's, on ``IDENTITY_SAMPLES`` frames spread
  over the run (the descriptor network is the costly part: about 0.1 s a face here).
- LPIPS per frame, FID and FVD (``metrics.perceptual``) of the output's region against the ground truth's, with
  the user's ONNX networks; the sample counts beside each value.

Without the extra the entry's ``field.face`` is None and ``field.face_missing`` says how to get it (one line);
nothing fails.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.config.suite import MetricsSpec
from evalkit.errors import UserError
from evalkit.media.decode import DECODED_ONCE_ENV, FrameReader, SpilledFrames
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics.cpbd import BLOCK as CPBD_BLOCK, cpbd
from evalkit.metrics.face import (ALL_POINTS, DEFAULT_RECT_FROM_BOX, MOUTH_POINTS, FaceModels, descriptor_distance,
                                  face_models_missing, face_rect_from_box, landmark_distance, mouth_opening_ratio,
                                  rect_relation)
from evalkit.metrics.perceptual import FVD_CLIP, FeatureExtractor, FeatureGaussian, Lpips, frechet_of
from evalkit.pipeline.crop import CropPreparer
from evalkit.pipeline.paste import Paster
from evalkit.record.layout import FRAMES_INNER
from evalkit.files import same_file

SHARED_DESCRIPTORS = "face-descriptors"  # inside the run's decoded-frames folder: descriptors its workers share
IDENTITY_SAMPLES = 12  # frames whose identity descriptors are computed, spread evenly over the run
CPBD_SAMPLES = 50  # frames whose mouth CPBD is computed (about 7 ms each here), spread evenly over the run
CALIBRATION_TRIES = 5  # frames tried (spread over the run) for the detector to calibrate the face rectangle
BATCH = 16  # frames per LPIPS / FID network call
AGREE_FRAMES = 1  # two reliable sync estimates within this many frames agree


def identity_frames(n: int, samples: int = IDENTITY_SAMPLES) -> list[int]:
    """``samples`` frame indices spread evenly over ``n`` frames (all of them when fewer)."""
    if n <= samples:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, samples)})


def sync_dict(envelope: np.ndarray, opening: np.ndarray, fps: float, max_offset: int, video_frames: int) -> dict:
    """The sync estimate of a landmark opening series against the audio envelope, as a record's Sync dict."""
    from evalkit.metrics.sync import sync_of_signals

    need = 2 * max_offset + 3
    n = min(len(envelope), len(opening))
    if n < need:
        return _no_signal(fps, f"{n} frames are too few for lags of +/-{max_offset} (need {need})")
    if float(np.std(opening[:n])) < 1e-6:
        return _no_signal(fps, "the mouth's landmarks do not move")
    if float(np.max(envelope[:n])) <= 0:
        return _no_signal(fps, "the audio is silent")
    return sync_of_signals(envelope[:n], opening[:n], fps, max_offset, video_frames).to_dict()


def _no_signal(fps: float, reason: str) -> dict:
    return {"offset_frames": None, "offset_ms": None, "confidence": 0.0, "fps": fps, "no_signal": True,
            "reliable": False, "reason": reason, "peak_frames": None, "lags": [], "curve": []}


def agreement(a: dict | None, b: dict | None) -> bool | None:
    """Whether two sync estimates agree within AGREE_FRAMES; None unless both are reliable."""
    if not a or not b or not a.get("reliable") or not b.get("reliable"):
        return None
    return abs(a["offset_frames"] - b["offset_frames"]) <= AGREE_FRAMES


class FaceSeries:
    """Per-frame landmarks, LMD, mouth opening and sampled identity distances, fed one frame at a time."""

    def __init__(self, identity_at: set[int], truth_points: dict | None = None):
        """``truth_points`` (frame -> the ground truth's 68 points) is read and filled: an earlier run on the same
        frames fills it, a later one reuses it. (Identity descriptors are remembered across runs by
        ``FaceModels.descriptor`` itself, by what they are computed from.)"""
        self.models = FaceModels.load()
        self.identity_at = identity_at
        self.lmd_mouth: list[float] = []
        self.lmd_all: list[float] = []
        self.opening: list[float] = []
        self.truth_opening: list[float] = []
        self.identity_frames: list[int] = []
        self.identity_template: list[float] = []
        self.identity_truth: list[float] = []
        self._descriptors: dict = {}
        self._truth_points: dict = truth_points if truth_points is not None else {}

    def _descriptor(self, key, image: np.ndarray, rect) -> np.ndarray:
        """A template's or ground truth's descriptor: the same frames in every combination of a run, computed once
        per run where the run has a folder its processes share (the decoded frames': every worker sees it)."""
        if key is None or key not in self._descriptors:
            shared = os.environ.get(DECODED_ONCE_ENV)
            d = self.models.descriptor(image, rect, self.models.landmarks(image, rect),
                                       shared=Path(shared) / SHARED_DESCRIPTORS if shared else None)
            if key is None:
                return d
            self._descriptors[key] = d
        return self._descriptors[key]

    def add(self, i: int, rect, output: np.ndarray, truth: np.ndarray | None = None,
            template: np.ndarray | None = None, template_key=None, truth_key=None) -> None:
        """Frame ``i``: the output's full frame, the ground truth's (or None) and the template's (or None), one face
        rectangle for all. ``*_key`` name a template or truth frame whose descriptor may be reused (None: never)."""
        points = self.models.landmarks(output, rect)
        self.opening.append(float(mouth_opening_ratio(points)[0]))
        if truth is not None:
            truth_points = self._truth_points.get(i)
            if truth_points is None:
                truth_points = self._truth_points[i] = self.models.landmarks(truth, rect)
            self.truth_opening.append(float(mouth_opening_ratio(truth_points)[0]))
            self.lmd_mouth.append(float(landmark_distance(truth_points, points, MOUTH_POINTS)[0]))
            self.lmd_all.append(float(landmark_distance(truth_points, points, ALL_POINTS)[0]))
        if i in self.identity_at and (truth is not None or template is not None):
            own = self.models.descriptor(output, rect, points)
            self.identity_frames.append(i)
            if template is not None:
                self.identity_template.append(float(descriptor_distance(
                    own, self._descriptor(("t", template_key) if template_key is not None else None, template,
                                          rect))[0]))
            if truth is not None:
                self.identity_truth.append(float(descriptor_distance(
                    own, self._descriptor(("t", truth_key) if truth_key is not None else None, truth, rect))[0]))


def calibrate_rect_from_box(models: FaceModels, frames, boxes) -> tuple[tuple[float, ...], str]:
    """The box-to-rectangle relation from the detector on the first of ``frames`` (full frames, with their crop
    ``boxes``) where it finds a face overlapping the box; DEFAULT_RECT_FROM_BOX where it finds none."""
    for k, (frame, box) in enumerate(zip(frames, boxes)):
        x1, y1, x2, y2 = (int(v) for v in box)
        w = x2 - x1
        h, wd = frame.shape[:2]
        wx1, wy1, wx2, wy2 = max(0, x1 - w // 2), max(0, y1 - w), min(wd, x2 + w // 2), min(h, y2 + w // 2)
        found = models.detect(frame[wy1:wy2, wx1:wx2], upsample=1 if w < 160 else 0)
        for left, top, right, bottom, _ in found:
            rect = (left + wx1, top + wy1, right + wx1, bottom + wy1)
            cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
            if x1 <= cx <= x2 and y1 - w <= cy <= y2:  # the face whose box this is
                return rect_relation(box, rect), f"the detector on frame {k} of those tried"
    return DEFAULT_RECT_FROM_BOX, "the default relation (the detector found no face in the frames tried)"


class FieldMeasures:
    """The field's metrics fed one output frame at a time, in order: from evalkit's streamed pass
    (``measure.stream``, no file read again) or from a run folder's files (``measure_field``).

    ``frames``: how many frames are measured (the compared frames with a ground truth); ``template_indices[i]``
    the template frame output frame i re-drew, with crop box ``boxes[template_indices[i]]``;
    ``template_frames(indices)`` yields those template frames (full frames, any buffers) lazily: the face
    rectangle's calibration reads the first and stops where the detector finds a face. ``shared``: what an
    earlier run on the very same template and ground-truth frames worked out and a later one reuses (the
    calibrated rectangle, the ground truth's landmarks); read and filled.
    """

    def __init__(self, frames: int, template_indices, boxes: np.ndarray, template_frames, contract: Contract,
                 metrics: MetricsSpec, with_truth: bool, truth_is_template: bool, shared: dict | None = None):
        self.n = frames
        self.template_indices, self.boxes = template_indices, boxes
        self.contract, self.metrics = contract, metrics
        self.truth_is_template = truth_is_template
        mx1, my1, mx2, my2 = contract.mouth_box
        self.mouth = np.s_[my1:my2, mx1:mx2]
        self.missing = face_models_missing() if metrics.face else "metrics.face is off in the suite"
        self.cropper = CropPreparer(contract)
        self.lpips = Lpips(metrics.lpips.model, metrics.lpips.linear) if metrics.lpips and with_truth else None
        self.fid = FeatureExtractor(metrics.fid.model, "FID") if metrics.fid and with_truth else None
        self.fvd = FeatureExtractor(metrics.fvd.model, "FVD") if metrics.fvd and with_truth else None
        self.fid_sets = (FeatureGaussian(), FeatureGaussian())
        self.fvd_sets = (FeatureGaussian(), FeatureGaussian())
        self.pending: dict[str, tuple[list, list]] = {"lpips": ([], []), "fid": ([], []), "fvd": ([], [])}
        self.lpips_values: list[float] = []
        self.cpbd_out, self.cpbd_template, self.template_cpbd = [], [], {}
        self.cpbd_at = identity_frames(frames, CPBD_SAMPLES)
        self.cpbd_wanted = set(self.cpbd_at)
        self.cpbd_block = min(CPBD_BLOCK, my2 - my1, mx2 - mx1)  # a mouth box under 64 px (the 160 px family)
        self.result_: dict = {"face_missing": self.missing, "face": None}
        self.series = self.relation = None
        if self.missing is None and frames > 0:
            shared = shared if shared is not None else {}
            if "relation" not in shared:
                tries = identity_frames(frames, CALIBRATION_TRIES)
                wanted = [template_indices[k] for k in tries]
                shared["relation"] = calibrate_rect_from_box(FaceModels.load(), template_frames(wanted),
                                                             [boxes[t] for t in wanted])
            self.relation, how = shared["relation"]
            self.series = FaceSeries(set(identity_frames(frames)), shared.setdefault("truth_points", {}))
            self.result_["face"] = {"rect_from": how, "rect_relation": list(self.relation)}

    def _region(self, spec, image: np.ndarray) -> np.ndarray:
        return image if spec.region == "inner" else image[self.mouth]

    def add(self, i: int, inner: np.ndarray, template_frame: np.ndarray, template_inner: np.ndarray,
            full: np.ndarray | None, truth: np.ndarray | None = None) -> None:
        """Output frame ``i`` (< frames): its inner region, the template frame it re-drew and that frame's inner
        region as cut for the model, the pasted-back full frame (needed with the face models only) and the ground
        truth's frame i (or None)."""
        t = self.template_indices[i]
        box = self.boxes[t]
        if i in self.cpbd_wanted:
            self.cpbd_out.append(cpbd(inner[self.mouth], self.cpbd_block))
            if t not in self.template_cpbd:
                self.template_cpbd[t] = cpbd(template_inner[self.mouth], self.cpbd_block)
            self.cpbd_template.append(self.template_cpbd[t])
        if self.series is not None:
            same_truth = self.truth_is_template and t == i
            self.series.add(i, face_rect_from_box(box, self.relation), full, truth, template_frame, template_key=t,
                            truth_key=t if same_truth else None)
        if truth is not None and (self.lpips or self.fid or self.fvd):
            self._networks(i, inner, self.cropper.crop_frame(truth, box))

    def _networks(self, i: int, inner: np.ndarray, truth_inner: np.ndarray) -> None:
        metrics, pending = self.metrics, self.pending
        for name, spec in (("lpips", metrics.lpips if self.lpips else None),
                           ("fid", metrics.fid if self.fid else None), ("fvd", metrics.fvd if self.fvd else None)):
            if spec is not None:
                pending[name][0].append(self._region(spec, truth_inner).copy())
                pending[name][1].append(self._region(spec, inner).copy())
        if self.fvd and len(pending["fvd"][0]) == FVD_CLIP:
            self.fvd_sets[1].add(self.fvd.clip(np.stack(pending["fvd"][0])))
            self.fvd_sets[0].add(self.fvd.clip(np.stack(pending["fvd"][1])))
            pending["fvd"] = ([], [])
        for name in ("lpips", "fid"):
            got = pending[name]
            if got[0] and (len(got[0]) == BATCH or i == self.n - 1):
                a, b = np.stack(got[0]), np.stack(got[1])
                if name == "lpips":
                    self.lpips_values += self.lpips(a, b).tolist()
                else:
                    self.fid_sets[1].add(self.fid.frames(a))
                    self.fid_sets[0].add(self.fid.frames(b))
                pending[name] = ([], [])

    def result(self, wav: np.ndarray, template_size: tuple[int, int], builtin_sync: dict | None = None) -> dict:
        """The entry's ``field`` part."""
        result, metrics, contract = self.result_, self.metrics, self.contract
        result["cpbd_frames"] = self.cpbd_at
        result["cpbd_mouth"] = self.cpbd_out
        result["cpbd_mouth_template"] = self.cpbd_template
        series, n = self.series, self.n
        if series is not None:
            face = result["face"]
            face.update(lmd_mouth=series.lmd_mouth, lmd_all=series.lmd_all, lmd_unit="pixels of the full frame "
                        f"({template_size[0]}x{template_size[1]})", opening=series.opening,
                        ground_truth_opening=series.truth_opening, identity_frames=series.identity_frames,
                        identity_template=series.identity_template, identity_ground_truth=series.identity_truth)
            from evalkit.metrics.sync import audio_envelope

            fps, max_offset = contract.fps, metrics.sync_max_offset
            audio_frames = min(n, int(len(wav) * fps / contract.sample_rate + 1e-6))
            envelope = audio_envelope(wav, contract.sample_rate, fps, audio_frames)
            face["sync"] = sync_dict(envelope, np.asarray(series.opening), fps, max_offset, n)
            face["ground_truth_sync"] = (sync_dict(envelope, np.asarray(series.truth_opening), fps, max_offset, n)
                                         if series.truth_opening else None)
            face["agrees_with_builtin"] = agreement(face["sync"], builtin_sync)
        if self.lpips:
            result["lpips"] = {"values": self.lpips_values, "region": metrics.lpips.region}
        if self.fid:
            result["fid"] = {"value": _frechet(*self.fid_sets), "samples": self.fid_sets[0].count,
                             "region": metrics.fid.region}
        if self.fvd:
            result["fvd"] = {"value": _frechet(*self.fvd_sets), "clips": self.fvd_sets[0].count,
                             "clip_frames": FVD_CLIP, "region": metrics.fvd.region}
        return result

    @property
    def needs_full_frames(self) -> bool:
        """Whether ``add`` needs the pasted-back full frame (the face models measure it)."""
        return self.series is not None


def measure_field(folder: Path, frames: int, template_indices: list[int], boxes: np.ndarray, template: Path,
                  ground_truth: Path | None, contract: Contract, metrics: MetricsSpec, wav: np.ndarray,
                  builtin_sync: dict | None = None, log=print) -> dict:
    """The field metrics of one generated run folder (its lossless inner frames, FRAMES_INNER), as the entry's
    ``field`` part: an external backend's (evalkit's own pipeline measures them in its streamed pass). Output
    frame i re-drew template frame ``template_indices[i]`` with crop box ``boxes[template_indices[i]]``; the
    ground truth's frame i is its truth."""
    inner_info = probe_video(folder / FRAMES_INNER)
    template_info = probe_video(template)
    truth_info = probe_video(ground_truth) if ground_truth is not None else None
    n = min(frames, inner_info.frames, truth_info.frames if truth_info else frames)
    cropper, paster = CropPreparer(contract), Paster(contract)
    inner = np.empty((inner_info.height, inner_info.width, 3), np.uint8)
    frame = np.empty((template_info.height, template_info.width, 3), np.uint8)
    full = np.empty_like(frame)
    truth = np.empty((truth_info.height, truth_info.width, 3), np.uint8) if truth_info else None
    crop_copy = np.empty_like(cropper.crop)
    with SpilledFrames(template_info) as spill:
        def template_frames(indices):
            for t in indices:
                yield spill.read_into(t, np.empty_like(frame))

        measures = FieldMeasures(n, template_indices, boxes, template_frames, contract, metrics,
                                 truth_info is not None, ground_truth is not None and same_file(ground_truth, template))
        with FrameReader(inner_info) as inner_reader, (FrameReader(truth_info) if truth_info else _Nothing()) as tr:
            for i in range(n):
                t = template_indices[i]
                box = boxes[t]
                if not inner_reader.read_into(inner):
                    raise UserError(f"{folder / FRAMES_INNER} ended after {i} frames, expected {n}")
                if truth is not None and not tr.read_into(truth):
                    raise UserError(f"ground truth {ground_truth} ended after {i} frames, expected {n}")
                spill.read_into(t, frame)
                template_inner = cropper.crop_frame(frame, box)
                if measures.needs_full_frames:
                    np.copyto(crop_copy, cropper.crop)
                    paster.paste(crop_copy, inner, frame, box, out=full)
                measures.add(i, inner, frame, template_inner, full, truth)
    return measures.result(wav, (template_info.width, template_info.height), builtin_sync)


def _frechet(a: FeatureGaussian, b: FeatureGaussian) -> float:
    return frechet_of(a, b) if a.count >= 2 and b.count >= 2 else math.nan


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None
