"""Measuring a generated run: fidelity against its ground truth per frame and region, and sync.

Regions, each labelled in every output:

- ``inner``: the model's own inner region (320x320), exact pixels;
- ``mouth``: the contract's ``mouth_box`` within it;
- ``full``: the pasted-back full frame, exact pixels;
- ``mp4_face`` (the default) or ``mp4_full``: the face window, or the whole
  frame, decoded from ``output.mp4`` (H.264 yuv420p): what a viewer sees; its
  SSIM at the viewer's scale (``measure_viewer_frames``).

evalkit's own pipeline measures inner, mouth and full while the frames are in
memory (``FrameMeasures``, fed by ``pipeline.generate``) and decodes the MP4
once afterwards (``measure_viewer_frames``); ``measure_run`` feeds the same
measures from the files an external backend wrote.

The ground truth's inner region is cut with the same crop boxes and resize as
the model's input. Frames are compared in order; different sizes, or frame
counts (unless the suite allows trimming), are an error that gives both numbers.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer
from evalkit.errors import UserError
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics.fidelity import SsimKernel, viewing_scale
from evalkit.metrics.sync import MouthTrack, estimate_sync, mouth_thumbnails, video_lag
from evalkit.metrics.syncnet import SyncNetRunner
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.config.suite import MetricsSpec
from evalkit.media.decode import FrameReader
from evalkit.media.side_by_side import side_by_side_panel
from evalkit.record.vocabulary import REGIONS  # noqa: F401 (re-exported: the regions measured)
from evalkit.files import same_file

SIDE_BY_SIDE_PRESET = "ultrafast"  # a page's comparison video: a third of veryfast's encoding time, larger file


def aligned_frame_count(ground_truth: Path, gt_frames: int, gt_size: tuple[int, int], frames: int,
                        size: tuple[int, int], trim: bool, truth_is_template: bool = False) -> int:
    """Number of frames to compare; raises UserError when the two videos do not line up.

    ``truth_is_template``: the ground truth is the template video itself, walked from its first frame (a
    dataset folder's frames, a reconstruction of the recorded clip). A run shorter than it re-drew its first
    frames, one for one: those are compared without asking for ``trim`` (``template_truth_note`` says so)."""
    if gt_size != size:
        raise UserError(
            f"ground truth {ground_truth} is {gt_size[0]}x{gt_size[1]}, the output is {size[0]}x{size[1]}: "
            "frames of different sizes cannot be compared"
        )
    if gt_frames != frames and not trim and not (truth_is_template and frames < gt_frames):
        raise UserError(
            f"ground truth {ground_truth} has {gt_frames} frames, the output has {frames}: set "
            "metrics.trim_to_shortest: true in the suite to compare the first "
            f"{min(gt_frames, frames)}"
        )
    return min(gt_frames, frames)


def template_truth_note(ground_truth: Path, gt_frames: int, compared: int) -> str | None:
    """What a run whose ground truth is its template compared, when that is not the whole ground truth:
    "ground truth: the first 259 of 262 frames of full_body_img/" (None when it compared every frame)."""
    from evalkit.config.dataset import frame_list_folder, is_frame_list

    if compared >= gt_frames:
        return None
    name = f"{frame_list_folder(ground_truth).name}/" if is_frame_list(ground_truth) else Path(ground_truth).name
    return (f"ground truth: the first {compared} of {gt_frames} frames of {name} (the template itself: the run "
            "re-drew its first frames)")


class FrameMeasures:
    """Everything measured per output frame, fed one frame at a time in order (no file is read here).

    ``add`` takes the model's inner region and, with a ground truth, the pasted full frame, the ground
    truth's frame and its inner region (cut as the output's was): regions inner, mouth, full, and the mouth
    thumbnails for sync. Region mp4_full comes from ``measure_viewer_frames`` (output.mp4 decoded once).
    SSIM keeps one ``SsimKernel`` per region, so no frame allocates.
    """

    def __init__(self, contract: Contract, metrics: MetricsSpec, truth_track: MouthTrack | None = None,
                 truth_syncs: dict | None = None):
        """``truth_track``: the ground truth's mouth, tracked already by an earlier run of the same frames (the
        truth is then not tracked again); ``truth_syncs``: its sync estimates by the audio's digest (read, and
        filled)."""
        self.contract = contract
        self.metrics = metrics
        self.truth_tracked = truth_track is not None
        self.truth_syncs = truth_syncs if truth_syncs is not None else {}
        mx1, my1, mx2, my2 = contract.mouth_box
        self.mouth = np.s_[my1:my2, mx1:mx2]
        self.fidelity = {region: {"psnr": [], "ssim": []} for region in REGIONS}
        self.viewer: dict | None = None  # the viewer pass's region and window (measure_viewer_frames)
        # the regions measured in memory; mp4_full is scored by measure_viewer_frames' own per-thread kernels
        self.kernels = {region: SsimKernel() for region in ("inner", "mouth", "full")}
        # the mouths followed for sync, a frame at a time (3 KB a frame each, nothing else grows with the clip)
        self.tracks = {"output": MouthTrack(), "ground_truth": truth_track or MouthTrack()}
        self.syncnet = None
        if metrics.syncnet is not None:
            spec = metrics.syncnet
            self.syncnet = SyncNetRunner(spec.video_model, spec.audio_model, spec.channel_order, spec.scale,
                                         spec.vshift)

    def _add(self, region: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        value, similarity = self.kernels[region].psnr_and_ssim(reference, candidate)
        self.fidelity[region]["psnr"].append(value)
        self.fidelity[region]["ssim"].append(similarity)

    def add(self, inner: np.ndarray, full: np.ndarray | None = None, truth_full: np.ndarray | None = None,
            truth_inner: np.ndarray | None = None) -> None:
        """One frame, every region (``add_face`` then ``add_full``)."""
        self.add_face(inner, truth_inner)
        if truth_full is not None:
            self.add_full(full, truth_full)

    def add_face(self, inner: np.ndarray, truth_inner: np.ndarray | None = None) -> None:
        """Regions inner and mouth, and the sync thumbnails. ``add_face`` and ``add_full`` keep separate
        series, so two threads may feed them side by side (each in frame order)."""
        self.tracks["output"].add(mouth_thumbnails(inner[self.mouth][None])[0])
        if self.syncnet is not None:
            self.syncnet.add_frame(inner if self.metrics.syncnet.region == "face" else inner[self.mouth])
        if truth_inner is not None:
            if not self.truth_tracked:
                self.tracks["ground_truth"].add(mouth_thumbnails(truth_inner[self.mouth][None])[0])
            self._add("inner", truth_inner, inner)
            self._add("mouth", truth_inner[self.mouth], inner[self.mouth])

    def add_full(self, full: np.ndarray, truth_full: np.ndarray) -> None:
        """Region full: the pasted-back frame against the ground truth's."""
        self._add("full", truth_full, full)

    def _truth_sync(self, wav: np.ndarray, sample_rate: int) -> dict:
        """The ground truth's own sync estimate against ``wav`` (once per audio for a track reused)."""
        import hashlib

        fps, max_offset = self.contract.fps, self.metrics.sync_max_offset
        key = (hashlib.sha256(np.ascontiguousarray(wav).tobytes()).hexdigest(), sample_rate, fps, max_offset)
        if key not in self.truth_syncs:
            self.truth_syncs[key] = estimate_sync(wav, sample_rate, self.tracks["ground_truth"], fps,
                                                  max_offset).to_dict()
        return copy.deepcopy(self.truth_syncs[key])

    def result(self, wav: np.ndarray, sample_rate: int, with_truth: bool) -> dict:
        """What ``measure_run`` returns (see there)."""
        fps, max_offset = self.contract.fps, self.metrics.sync_max_offset
        output, truth = self.tracks["output"], self.tracks["ground_truth"]
        result = {"sync": estimate_sync(wav, sample_rate, output, fps, max_offset).to_dict()}
        if with_truth:
            n = len(self.fidelity["inner"]["psnr"])
            viewer = viewer_region(self.metrics)
            if len(self.fidelity[viewer]["psnr"]) != n:
                raise RuntimeError(f"{len(self.fidelity[viewer]['psnr'])} viewer frames measured for {n} frames")
            fidelity = {region: series for region, series in self.fidelity.items()
                        if not region.startswith("mp4_") or region == viewer}
            result.update(compared_frames=n, fidelity=fidelity, viewer=self.viewer,
                          ground_truth_sync=self._truth_sync(wav, sample_rate),
                          video_lag=video_lag(truth, output, fps, max_offset).to_dict())
        if self.syncnet is not None:
            result["syncnet"] = self.syncnet.result(wav, sample_rate, fps)
        for track in (output, truth):  # the truth's track may be kept for later runs: not its passes' arrays
            track.forget_detrended()
        return result


VIEWER_RING = 8  # decoded frame pairs in flight in the viewer pass
VIEWER_THREADS = 2  # SSIM workers (OpenCV and numpy release the GIL); each keeps its own SsimKernel


def viewer_region(metrics: MetricsSpec) -> str:
    """The region the viewer pass measures: ``mp4_face`` or ``mp4_full`` (``metrics.viewer_region``)."""
    return f"mp4_{metrics.viewer_region}"


def measure_viewer_frames(measures: FrameMeasures, mp4: Path, ground_truth: Path, frames: int,
                          side_by_side: Path | None = None, audio: Path | None = None,
                          window: tuple[int, int, int, int] | None = None) -> None:
    """The viewer's picture: output.mp4 decoded once, beside the ground truth, for the first ``frames`` frames.

    ``window`` (x0, y0, x1, y1; ``media.frames.face_window``, the whole frame when None) is the face window.
    With ``metrics.viewer_region`` face (region mp4_face) only the window is decoded into memory and scored;
    with full (region mp4_full) the whole frame is. PSNR is of the picture's pixels; SSIM of the picture seen
    from a viewer's distance: its block means at ``metrics.fidelity.viewing_scale`` (1 for a picture under 384
    pixels on its shorter side, 3 for the 900x800 face window of a 1440x1080 video), as the SSIM authors' own
    implementation downsamples; the record's ``viewer.ssim_scale`` says which. Frames are scored by
    VIEWER_THREADS workers while the next ones decode. With ``side_by_side``, the same decoded frames are also
    written there as ground truth | output of the window (H.264, with ``audio``), so the page's comparison video
    costs no second decode.
    """
    from evalkit.media.encode import VideoWriter

    region = viewer_region(measures.metrics)
    mp4_info, truth_info = probe_video(mp4), probe_video(ground_truth)
    face = window or (0, 0, truth_info.width, truth_info.height)
    read = face if region == "mp4_face" else None  # what is decoded into memory and scored
    scores = np.empty((frames, 2))
    local = threading.local()

    def score(i: int, k: int) -> None:
        kernel = getattr(local, "kernel", None)
        if kernel is None:
            kernel = local.kernel = SsimKernel()
        scores[i] = kernel.psnr_and_ssim(truths[k], outs[k], scale)

    with ExitStack() as stack:
        reader = stack.enter_context(FrameReader(mp4_info, read))
        truth_reader = stack.enter_context(FrameReader(truth_info, read))
        outs = np.empty((VIEWER_RING, *reader.shape), np.uint8)
        truths = np.empty((VIEWER_RING, *truth_reader.shape), np.uint8)
        if outs.shape != truths.shape:
            raise UserError(f"{mp4} is {mp4_info.width}x{mp4_info.height}, its ground truth {ground_truth} "
                            f"{truth_info.width}x{truth_info.height}: frames of different sizes cannot be compared")
        scale = viewing_scale(*reader.shape[:2])
        pool = stack.enter_context(ThreadPoolExecutor(VIEWER_THREADS, thread_name_prefix="evalkit-viewer"))
        writer = None
        if side_by_side is not None:
            x0, y0, x1, y1 = face
            if read is not None:  # the decoded frames are the window already
                x1, y1, x0, y0 = x1 - x0, y1 - y0, 0, 0
            factor, pw, ph = side_by_side_panel(x1 - x0, y1 - y0)
            x1, y1 = x0 + factor * pw, y0 + factor * ph  # a whole number of factor x factor blocks
            both = np.empty((ph, 2 * pw, 3), np.uint8)
            scaled = np.empty((ph, pw, 3), np.uint8)
            writer = stack.enter_context(VideoWriter(side_by_side, both.shape[1], both.shape[0],
                                                     measures.contract.fps, kind="mp4", audio=audio, crf=23,
                                                     preset=SIDE_BY_SIDE_PRESET))
        pending: deque = deque()
        for i in range(frames):
            k = i % VIEWER_RING
            if len(pending) == VIEWER_RING:
                pending.popleft().result()  # frame i - VIEWER_RING scored: its buffers are free
            if not reader.read_into(outs[k]):
                raise UserError(f"{mp4} ended after {i} frames, expected {frames}")
            if not truth_reader.read_into(truths[k]):
                raise UserError(f"{ground_truth} ended after {i} frames, expected {frames}")
            pending.append(pool.submit(score, i, k))
            if writer is not None:
                for side, frame in enumerate((truths[k, y0:y1, x0:x1], outs[k, y0:y1, x0:x1])):
                    if factor == 1:
                        both[:, side * pw:(side + 1) * pw] = frame
                    else:  # each pixel the mean of a factor x factor block
                        cv2.resize(frame, (pw, ph), dst=scaled, interpolation=cv2.INTER_AREA)
                        both[:, side * pw:(side + 1) * pw] = scaled
                writer.write(both)
        for job in pending:
            job.result()
    measures.fidelity[region]["psnr"].extend(scores[:, 0].tolist())
    measures.fidelity[region]["ssim"].extend(scores[:, 1].tolist())
    measures.viewer = {"region": region, "window": list(face) if read is not None else None, "ssim_scale": scale}


def measure_run(combo_dir: Path, ground_truth: Path | None, boxes: np.ndarray, template_indices: list[int],
                contract: Contract, frames: int, metrics: MetricsSpec, wav: np.ndarray, sample_rate: int,
                template: Path | None = None) -> dict:
    """Everything measured from a generated run's files (an external backend's: evalkit's own pipeline
    measures while it generates, ``pipeline.generate``), through the same ``FrameMeasures``.

    Returns ``compared_frames`` and ``fidelity`` ({region: {"psnr": [...], "ssim": [...]}}) when there is
    a ground truth; ``sync`` (the output's mouth against the audio), ``ground_truth_sync`` (the ground
    truth's own, so a report can say "2 frames later than the source"), ``video_lag`` (the output's mouth
    motion against the ground truth's, no audio: ``metrics.sync.video_lag``) and ``syncnet`` (LSE-D / LSE-C,
    when the suite names a SyncNet). ``template_indices[i]`` is the template frame output frame i re-drew:
    the ground truth's frame i is cropped with that frame's box, as the output was. ``template``: the template
    video; a ground truth that is that file, re-drawn from its first frame, is compared on the run's frames
    without asking for trim (``ground_truth_note`` says so).
    """
    inner_info = probe_video(combo_dir / FRAMES_INNER)
    infos = {"inner": inner_info}
    n = frames
    if ground_truth is not None:
        gt = probe_video(ground_truth)
        full_info = probe_video(combo_dir / FRAMES_FULL)
        walks_truth = (template is not None and same_file(ground_truth, template)
                       and list(template_indices[:frames]) == list(range(min(frames, len(template_indices)))))
        n = aligned_frame_count(ground_truth, gt.frames, (gt.width, gt.height), frames,
                                (full_info.width, full_info.height), metrics.trim_to_shortest, walks_truth)
        infos.update(gt=gt, full=full_info)
    bufs = {name: np.empty((info.height, info.width, 3), np.uint8) for name, info in infos.items()}
    measures = FrameMeasures(contract, metrics)
    cropper = CropPreparer(contract)
    with ExitStack() as stack:
        readers = {name: stack.enter_context(FrameReader(info)) for name, info in infos.items()}
        for i in range(n):
            for name, reader in readers.items():
                if not reader.read_into(bufs[name]):
                    raise UserError(f"{reader.info.path} ended after {i} frames, expected {n}")
            if ground_truth is None:
                measures.add(bufs["inner"])
            else:
                truth_inner = cropper.crop_frame(bufs["gt"], boxes[template_indices[i]])
                measures.add(bufs["inner"], bufs["full"], bufs["gt"], truth_inner)
    if ground_truth is not None:
        from evalkit.media.frames import face_window

        measure_viewer_frames(measures, combo_dir / OUTPUT_MP4, ground_truth, n,
                              window=face_window(boxes[template_indices[:n]], gt.width, gt.height))
    result = measures.result(wav, sample_rate, ground_truth is not None)
    note = template_truth_note(ground_truth, infos["gt"].frames, n) if ground_truth is not None and walks_truth \
        else None
    if note:
        result["ground_truth_note"] = note
    return result
