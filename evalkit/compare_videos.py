"""``evalkit metrics fidelity``: PSNR and SSIM between any two videos or frame folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.errors import UserError
from evalkit.frames_io import open_frames
from evalkit.metrics import psnr, ssim, summarise

BATCH = 16


def fidelity_between(reference: Path, candidate: Path, roi: tuple[int, int, int, int] | None = None,
                     trim: bool = False) -> dict:
    """Per-frame PSNR/SSIM of ``candidate`` against ``reference`` (optionally inside ``roi``) and their summary."""
    ref, cand = open_frames(reference), open_frames(candidate)
    if (ref.width, ref.height) != (cand.width, cand.height):
        raise UserError(f"reference {reference} is {ref.width}x{ref.height}, candidate {candidate} is "
                        f"{cand.width}x{cand.height}: frames of different sizes cannot be compared")
    if ref.frames != cand.frames and not trim:
        raise UserError(f"reference {reference} has {ref.frames} frames, candidate {candidate} has {cand.frames} "
                        f"(pass --trim to compare the first {min(ref.frames, cand.frames)})")
    n = min(ref.frames, cand.frames)
    x, y, w, h = roi or (0, 0, ref.width, ref.height)
    if x + w > ref.width or y + h > ref.height:
        raise UserError(f"--roi {x},{y},{w},{h} reaches outside the {ref.width}x{ref.height} frame")
    a = np.empty((BATCH, h, w, 3), np.uint8)
    b = np.empty_like(a)
    psnr_values: list[float] = []
    ssim_values: list[float] = []
    with ref.reader() as ref_frames, cand.reader() as cand_frames:
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for j in range(k):
                a[j] = next(ref_frames)[y : y + h, x : x + w]
                b[j] = next(cand_frames)[y : y + h, x : x + w]
            psnr_values += psnr(a[:k], b[:k]).tolist()
            ssim_values += ssim(a[:k], b[:k]).tolist()
    p, s = summarise(psnr_values), summarise(ssim_values)
    return {
        "reference": str(reference), "candidate": str(candidate), "roi": [x, y, w, h], "frames": n,
        "psnr_mean": p["mean"], "psnr_min": p["min"], "psnr_inf_frames": p["inf_count"],
        "ssim_mean": s["mean"], "ssim_min": s["min"], "psnr": psnr_values, "ssim": ssim_values,
    }
