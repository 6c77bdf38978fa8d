"""Side-by-side videos (left | right, ffmpeg's hstack) for looking at two results together."""

from __future__ import annotations

import subprocess
from pathlib import Path

from evalkit.errors import UserError
from evalkit.media.ffmpeg import ffmpeg_exe
from evalkit.files import atomic_output


SIDE_BY_SIDE_HEIGHT = 480  # at most: a taller face window is shown scaled down to this (the page's player is smaller)


def side_by_side_panel(width: int, height: int) -> tuple[int, int]:
    """The size (width, height) of each half of the side-by-side video for a face window of width x height: the
    window itself, or scaled down to SIDE_BY_SIDE_HEIGHT rows (its shape kept; even sizes, as H.264's 4:2:0 needs).

    >>> side_by_side_panel(388, 354), side_by_side_panel(900, 800)
    ((388, 354), (540, 480))
    """
    if height <= SIDE_BY_SIDE_HEIGHT:
        return width, height
    scale = SIDE_BY_SIDE_HEIGHT / height
    return max(2, 2 * round(width * scale / 2)), SIDE_BY_SIDE_HEIGHT


def side_by_side(left: Path, right: Path, out: Path, frames: int, audio_from_right: bool = True,
                 window: tuple[int, int, int, int] | None = None) -> Path:
    """Write ``out`` (H.264 MP4): ``left`` and ``right`` stacked horizontally, ``frames`` frames long.

    Both videos must have the same height; the audio comes from ``right`` when it has one. ``window``
    (x0, y0, x1, y1, half-open; ``media.frames.face_window``): only that part of both is shown, scaled down to
    SIDE_BY_SIDE_HEIGHT rows where it is taller (``side_by_side_panel``).
    """
    with atomic_output(out) as tmp:
        _stack(left, right, tmp, frames, audio_from_right, window)
    return out


def _stack(left: Path, right: Path, tmp: Path, frames: int, audio_from_right: bool,
           window: tuple[int, int, int, int] | None) -> None:
    crop = ""
    if window is not None:
        x0, y0, x1, y1 = window
        crop = f"crop={x1 - x0}:{y1 - y0}:{x0}:{y0},"
        panel = side_by_side_panel(x1 - x0, y1 - y0)
        if panel != (x1 - x0, y1 - y0):  # as the viewer pass writes it: pixel areas averaged
            crop += f"scale={panel[0]}:{panel[1]}:flags=area,"
    graph = f"[0:v]{crop}null[a];[1:v]{crop}null[b];[a][b]hstack=inputs=2,pad=ceil(iw/2)*2:ceil(ih/2)*2[v]"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(left), "-i", str(right),
           "-filter_complex", graph, "-map", "[v]"]
    if audio_from_right:
        cmd += ["-map", "1:a?", "-c:a", "aac", "-b:a", "96k"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"ffmpeg could not stack {left} and {right}: {result.stderr.strip()[-300:]}")
