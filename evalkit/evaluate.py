"""Measuring a generated run against its ground truth, per frame and per region.

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

from evalkit.contract import Contract
from evalkit.crop import CropPreparer
from evalkit.errors import UserError
from evalkit.ffmpeg_binary import probe_video
from evalkit.metrics import psnr, ssim
from evalkit.pipeline import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.video_decode import FrameReader, ping_pong_index

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


def measure_against_ground_truth(combo_dir: Path, ground_truth: Path, boxes: np.ndarray, template_frames: int,
                                 contract: Contract, frames: int, trim: bool) -> tuple[int, dict]:
    """Per-frame PSNR and SSIM of every region; returns (frames compared, {region: {"psnr": [...], "ssim": [...]}})."""
    gt = probe_video(ground_truth)
    full_info = probe_video(combo_dir / FRAMES_FULL)
    n = aligned_frame_count(ground_truth, gt.frames, (gt.width, gt.height), frames,
                            (full_info.width, full_info.height), trim)
    inner_info = probe_video(combo_dir / FRAMES_INNER)
    mp4_info = probe_video(combo_dir / OUTPUT_MP4)
    h, w = gt.height, gt.width
    ih, iw = contract.inner_height, contract.inner_width
    mx1, my1, mx2, my2 = contract.mouth_box
    bufs = {name: np.empty((BATCH, *shape, 3), np.uint8) for name, shape in
            [("gt", (h, w)), ("gt_inner", (ih, iw)), ("full", (h, w)), ("inner", (ih, iw)), ("mp4", (h, w))]}
    results = {region: {"psnr": [], "ssim": []} for region in REGIONS}
    cropper = CropPreparer(contract)

    def add(region: str, reference: np.ndarray, candidate: np.ndarray) -> None:
        results[region]["psnr"].extend(psnr(reference, candidate).tolist())
        results[region]["ssim"].extend(ssim(reference, candidate).tolist())

    with ExitStack() as stack:
        readers = {name: stack.enter_context(FrameReader(info)) for name, info in
                   [("gt", gt), ("full", full_info), ("inner", inner_info), ("mp4", mp4_info)]}
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for j in range(k):
                for name, reader in readers.items():
                    if not reader.read_into(bufs[name][j]):
                        raise UserError(f"{reader.info.path} ended after {start + j} frames, expected {n}")
                box = boxes[ping_pong_index(start + j, template_frames)]
                bufs["gt_inner"][j] = cropper.crop_frame(bufs["gt"][j], box)
            add("inner", bufs["gt_inner"][:k], bufs["inner"][:k])
            add("mouth", bufs["gt_inner"][:k, my1:my2, mx1:mx2], bufs["inner"][:k, my1:my2, mx1:mx2])
            add("full", bufs["gt"][:k], bufs["full"][:k])
            add("mp4_full", bufs["gt"][:k], bufs["mp4"][:k])
    return n, results
