"""Side-by-side videos (left | right, ffmpeg's hstack) for looking at two results together."""

from __future__ import annotations

import subprocess
from pathlib import Path

from evalkit.errors import UserError
from evalkit.media.ffmpeg import ffmpeg_exe
from evalkit.media.encode import MP4_THREADS
from evalkit.files import atomic_output


SIDE_BY_SIDE_HEIGHT = 480  # at most: a taller face window is shown scaled down (the page's player is smaller)


def side_by_side_panel(width: int, height: int) -> tuple[int, int, int]:
    """How the side-by-side video shows a face window of width x height: (k, panel width, panel height), each
    half of the video the window scaled down by the whole factor k, the least that brings it to at most
    SIDE_BY_SIDE_HEIGHT rows (k = 1: the window itself). A whole factor makes each panel pixel the mean of a
    k x k block (OpenCV's and ffmpeg's area scaling agree on it, and it is fast); the window's last
    ``width % k`` columns and ``height % k`` rows are left out.

    >>> side_by_side_panel(388, 354), side_by_side_panel(900, 800), side_by_side_panel(1441, 1081)
    ((1, 388, 354), (2, 450, 400), (3, 480, 360))
    """
    k = max(1, -(-height // SIDE_BY_SIDE_HEIGHT))
    return k, width // k, height // k


def side_by_side(left: Path, right: Path, out: Path, frames: int, audio_from_right: bool = True,
                 window: tuple[int, int, int, int] | None = None) -> Path:
    """Write ``out`` (H.264 MP4): ``left`` and ``right`` stacked horizontally, ``frames`` frames long.

    Both videos must have the same height; the audio comes from ``right`` when it has one. ``window``
    (x0, y0, x1, y1, half-open; ``media.frames.face_window``): only that part of both is shown, scaled down by a whole
    factor where it is taller than SIDE_BY_SIDE_HEIGHT rows (``side_by_side_panel``).
    """
    with atomic_output(out) as tmp:
        _stack(left, right, tmp, frames, audio_from_right, window)
    return out


def _stack(left: Path, right: Path, tmp: Path, frames: int, audio_from_right: bool,
           window: tuple[int, int, int, int] | None) -> None:
    crop = ""
    if window is not None:
        x0, y0, x1, y1 = window
        k, width, height = side_by_side_panel(x1 - x0, y1 - y0)
        crop = f"crop={k * width}:{k * height}:{x0}:{y0},"
        if k > 1:  # as the viewer pass writes it: each pixel the mean of a k x k block
            crop += f"scale={width}:{height}:flags=area,"
    graph = f"[0:v]{crop}null[a];[1:v]{crop}null[b];[a][b]hstack=inputs=2,pad=ceil(iw/2)*2:ceil(ih/2)*2[v]"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(left), "-i", str(right),
           "-filter_complex", graph, "-map", "[v]"]
    if audio_from_right:
        cmd += ["-map", "1:a?", "-c:a", "aac", "-b:a", "96k"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-threads", str(MP4_THREADS), "-movflags", "+faststart", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"ffmpeg could not stack {left} and {right}: {result.stderr.strip()[-300:]}")
