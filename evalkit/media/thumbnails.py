"""Worst-frame thumbnails: which frames to show, and the ground truth | output | difference strip of one.

Made when a run is recorded (``measure.view_assets``) and shown by the report;
pure functions of frames and per-frame PSNR, no file I/O.
"""

from __future__ import annotations

import cv2
import numpy as np

WORST_FRAMES = 4
WORST_MIN_GAP_SECONDS = 1.0  # worst frames at least this far apart: distinct moments, not neighbours of one glitch
DIFF_AMPLIFY = 4.0  # |difference| x4 fills the colour bar at 64 grey levels: small errors stay visible
THUMB_PANEL_PX = 144  # each panel of a worst-frame thumbnail, in pixels: the mouth's shape stays legible
THUMB_JPEG_QUALITY = 70  # OpenCV JPEG quality: about 10 KB a thumbnail, artefacts well below the errors it shows


def distinct_worst(psnr: np.ndarray, count: int, min_gap: int) -> list[int]:
    """Indices of the ``count`` lowest PSNRs, each at least ``min_gap`` frames from those already taken (distinct
    moments rather than the neighbours of one bad stretch), lowest first. NaN counts as the worst (never hidden)."""
    key = np.where(np.isnan(psnr), -np.inf, psnr)
    picked: list[int] = []
    for i in np.argsort(key, kind="stable"):
        if all(abs(int(i) - j) >= min_gap for j in picked):
            picked.append(int(i))
            if len(picked) == count:
                break
    return picked


def difference_strip_jpeg(reference: np.ndarray, output: np.ndarray, amplify: float,
                          panel_px: int = THUMB_PANEL_PX, quality: int = THUMB_JPEG_QUALITY) -> bytes:
    """Ground truth | output | |difference| x ``amplify`` as an inferno heat map (0 black to 255/amplify pale
    yellow), each panel ``panel_px`` high: RGB uint8 (H, W, 3) in, JPEG bytes out."""
    from matplotlib import colormaps

    diff = np.abs(reference.astype(np.int16) - output).mean(axis=2) * amplify
    heat = (colormaps["inferno"](np.clip(diff, 0, 255) / 255.0)[..., :3] * 255).astype(np.uint8)
    scale = panel_px / reference.shape[0]
    size = (max(1, round(reference.shape[1] * scale)), panel_px)
    panels = [cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_AREA) for p in (reference, output, heat)]
    gap = np.full((panel_px, 3, 3), 255, np.uint8)
    strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(strip[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a worst-frame thumbnail as JPEG")
    return jpeg.tobytes()
