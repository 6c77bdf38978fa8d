"""Measuring a generated run: fidelity against its ground truth per frame and region, and sync.

Regions, each labelled in every output:

- ``inner``: the model's own inner region (320x320), from the lossless frames;
- ``mouth``: the contract's ``mouth_box`` within it;
- ``full``: the pasted-back full frame, from the lossless frames;
- ``mp4_full``: the full frame decoded from ``output.mp4`` (H.264 yuv420p):
  what a viewer sees.

The ground truth's inner region is cut with the same crop boxes and resize as
the model's input. Frames are compared in order; different sizes, or frame
counts (unless the suite allows trimming), are an error that gives both numbers.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer
from evalkit.errors import UserError
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics import psnr, ssim
from evalkit.metrics.sync import estimate_sync, mouth_thumbnails
from evalkit.metrics.syncnet import SyncNetRunner
from evalkit.pipeline.generate import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.config.suite import MetricsSpec
from evalkit.media.decode import FrameReader

REGIONS = {
    "inner": "the model's 320x320 region, lossless output frames",
    "mouth": "the mouth_box within the model's region, lossless output frames",
    "full": "the pasted-back full frame, lossless output frames",
    "mp4_full": "the full frame decoded from output.mp4 (H.264 yuv420p): what a viewer sees",
}
BATCH = 16  # frames decoded and measured together


def aligned_frame_count(ground_truth: Path, gt_frames: int, gt_size: tuple[int, int], frames: int,
                        size: tuple[int, int], trim: bool) -> int:
    """Number of frames to compare; raises UserError when the two videos do not line up."""
    if gt_size != size:
        raise UserError(
            f"ground truth {ground_truth} is {gt_size[0]}x{gt_size[1]}, the output is {size[0]}x{size[1]}: "
            "frames of different sizes cannot be compared"
        )
    if gt_frames != frames and not trim:
        raise UserError(
            f"ground truth {ground_truth} has {gt_frames} frames, the output has {frames}: set "
            "metrics.trim_to_shortest: true in the suite to compare the first "
            f"{min(gt_frames, frames)}"
        )
    return min(gt_frames, frames)


def measure_run(combo_dir: Path, ground_truth: Path | None, boxes: np.ndarray, template_indices: list[int],
                contract: Contract, frames: int, metrics: MetricsSpec, wav: np.ndarray, sample_rate: int) -> dict:
    """Everything measured from a generated run's files, in one pass over its frames.

    Returns ``compared_frames`` and ``fidelity`` ({region: {"psnr": [...], "ssim": [...]}}) when there is
    a ground truth; ``sync`` (the output's mouth against the audio), ``ground_truth_sync`` (the ground
    truth's own, so a report can say "2 frames later than the source") and ``syncnet`` (LSE-D / LSE-C,
    when the suite names a SyncNet). ``template_indices[i]`` is the template frame output frame i re-drew:
    the ground truth's frame i is cropped with that frame's box, as the output was.
    """
    inner_info = probe_video(combo_dir / FRAMES_INNER)
    infos = {"inner": inner_info}
    n = frames
    if ground_truth is not None:
        gt = probe_video(ground_truth)
        full_info = probe_video(combo_dir / FRAMES_FULL)
        n = aligned_frame_count(ground_truth, gt.frames, (gt.width, gt.height), frames,
                                (full_info.width, full_info.height), metrics.trim_to_shortest)
        infos.update(gt=gt, full=full_info, mp4=probe_video(combo_dir / OUTPUT_MP4))
    mx1, my1, mx2, my2 = contract.mouth_box
    bufs = {name: np.empty((BATCH, info.height, info.width, 3), np.uint8) for name, info in infos.items()}
    if ground_truth is not None:
        bufs["gt_inner"] = np.empty_like(bufs["inner"])
    fidelity = {region: {"psnr": [], "ssim": []} for region in REGIONS}
    thumbs: dict[str, list[np.ndarray]] = {"output": [], "ground_truth": []}
    cropper = CropPreparer(contract)
    syncnet = None
    if metrics.syncnet is not None:
        spec = metrics.syncnet
        syncnet = SyncNetRunner(spec.video_model, spec.audio_model, spec.channel_order, spec.scale, spec.vshift)

    def add(region: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        fidelity[region]["psnr"].extend(psnr(reference, candidate).tolist())
        fidelity[region]["ssim"].extend(ssim(reference, candidate).tolist())

    with ExitStack() as stack:
        readers = {name: stack.enter_context(FrameReader(info)) for name, info in infos.items()}
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for j in range(k):
                for name, reader in readers.items():
                    if not reader.read_into(bufs[name][j]):
                        raise UserError(f"{reader.info.path} ended after {start + j} frames, expected {n}")
                if ground_truth is not None:
                    box = boxes[template_indices[start + j]]
                    bufs["gt_inner"][j] = cropper.crop_frame(bufs["gt"][j], box)
                if syncnet is not None:
                    face = bufs["inner"][j]
                    syncnet.add_frame(face if metrics.syncnet.region == "face" else face[my1:my2, mx1:mx2])
            mouth = np.s_[:k, my1:my2, mx1:mx2]
            thumbs["output"].append(mouth_thumbnails(bufs["inner"][mouth]))
            if ground_truth is not None:
                thumbs["ground_truth"].append(mouth_thumbnails(bufs["gt_inner"][mouth]))
                add("inner", bufs["gt_inner"][:k], bufs["inner"][:k])
                add("mouth", bufs["gt_inner"][mouth], bufs["inner"][mouth])
                add("full", bufs["gt"][:k], bufs["full"][:k])
                add("mp4_full", bufs["gt"][:k], bufs["mp4"][:k])
    fps = contract.fps
    result = {"sync": estimate_sync(wav, sample_rate, np.concatenate(thumbs["output"]), fps,
                                    metrics.sync_max_offset).to_dict()}
    if ground_truth is not None:
        result.update(compared_frames=n, fidelity=fidelity,
                      ground_truth_sync=estimate_sync(wav, sample_rate, np.concatenate(thumbs["ground_truth"]), fps,
                                                      metrics.sync_max_offset).to_dict())
    if syncnet is not None:
        result["syncnet"] = syncnet.result(wav, sample_rate, fps)
    return result
