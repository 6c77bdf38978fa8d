"""Side-by-side videos (left | right, ffmpeg's hstack) for looking at two results together."""

from __future__ import annotations

import subprocess
from pathlib import Path

from evalkit.errors import UserError
from evalkit.media.ffmpeg import ffmpeg_exe
from evalkit.files import atomic_output


def side_by_side(left: Path, right: Path, out: Path, frames: int, audio_from_right: bool = True,
                 window: tuple[int, int, int, int] | None = None) -> Path:
    """Write ``out`` (H.264 MP4): ``left`` and ``right`` stacked horizontally, ``frames`` frames long.

    Both videos must have the same height; the audio comes from ``right`` when it has one. ``window``
    (x0, y0, x1, y1, half-open; ``media.frames.face_window``): only that part of both is shown.
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
