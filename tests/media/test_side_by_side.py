"""Side-by-side videos of a face window taller than SIDE_BY_SIDE_HEIGHT: scaled down, the same pictures whether the
viewer pass writes them (evalkit's own pipeline) or ffmpeg stacks them from the files (an external backend's)."""

from __future__ import annotations

import numpy as np

from evalkit.config.contract import Contract
from evalkit.config.suite import MetricsSpec
from evalkit.measure.outputs import FrameMeasures, measure_viewer_frames
from evalkit.media.encode import VideoWriter
from evalkit.media.ffmpeg import probe_video
from evalkit.media.side_by_side import SIDE_BY_SIDE_HEIGHT, side_by_side, side_by_side_panel
from tests.conftest import decode

WINDOW = (100, 20, 401, 581)  # x0, y0, x1, y1: 301 x 561, taller than SIDE_BY_SIDE_HEIGHT, odd both ways


def _frames(n: int, shift: int) -> np.ndarray:
    """Smooth pictures that H.264 keeps well (above 35 dB), different in every frame and between the two videos."""
    y, x = np.mgrid[0:600, 0:640].astype(np.float64)
    out = np.empty((n, 600, 640, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = 128 + 100 * np.sin((x + 7 * i + shift) / 40)
        out[i, ..., 1] = 128 + 100 * np.cos((y - 5 * i) / 55)
        out[i, ..., 2] = 128 + 90 * np.sin((x + y + shift) / 70)
    return out


def _write(path, frames, kind):
    with VideoWriter(path, frames.shape[2], frames.shape[1], 25, kind=kind) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _db(a, b) -> float:
    return 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_a_tall_face_window_is_scaled_down_the_same_way_by_both_writers(tmp_path):
    truth_frames, out_frames = _frames(6, 0), _frames(6, 30)
    truth = _write(tmp_path / "truth.mkv", truth_frames, "lossless")
    mp4 = _write(tmp_path / "output.mp4", out_frames, "mp4")
    factor, *panel = side_by_side_panel(WINDOW[2] - WINDOW[0], WINDOW[3] - WINDOW[1])
    panel = tuple(panel)
    assert (factor, panel) == (2, (150, 280))  # 561 rows: halved (at most SIDE_BY_SIDE_HEIGHT = 480), the odd
    # last row and column left out
    assert SIDE_BY_SIDE_HEIGHT < 560

    streamed = tmp_path / "streamed.mp4"
    measures = FrameMeasures(Contract(), MetricsSpec())
    measure_viewer_frames(measures, mp4, truth, 6, side_by_side=streamed, window=WINDOW)
    made = side_by_side(truth, mp4, tmp_path / "made.mp4", 6, window=WINDOW)
    for path in (streamed, made):
        info = probe_video(path)
        assert (info.width, info.height, info.frames) == (2 * panel[0], panel[1], 6), path

    x0, y0 = WINDOW[:2]
    x1, y1 = x0 + 2 * panel[0], y0 + 2 * panel[1]

    def blocks(f):  # each pixel the mean of a 2 x 2 block, computed here by hand
        return f[y0:y1, x0:x1].astype(np.float64).reshape(panel[1], 2, panel[0], 2, 3).mean(axis=(1, 3))

    expected = [np.stack([blocks(f) for f in frames]) for frames in (truth_frames, decode(mp4))]
    for path in (streamed, made):
        both = decode(path)
        for half, want in zip((both[:, :, : panel[0]], both[:, :, panel[0]:]), expected):
            assert _db(half, want) > 35, path  # the window, scaled: a re-encode away
        shifted = np.stack([blocks(np.roll(f, -8, axis=0)) for f in truth_frames])
        assert _db(both[:, :, : panel[0]], shifted) < _db(both[:, :, : panel[0]], expected[0]) - 6  # that window
    # the scores are of the window at full size (SSIM at the viewer's scale), not of the side-by-side's picture
    assert measures.viewer == {"region": "mp4_face", "window": list(WINDOW), "ssim_scale": 1}
    assert len(measures.fidelity["mp4_face"]["ssim"]) == 6
