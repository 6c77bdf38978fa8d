"""Side-by-side videos (left | right, ffmpeg's hstack) for looking at two results together."""

from __future__ import annotations

import subprocess
from pathlib import Path

from evalkit.errors import UserError
from evalkit.media.ffmpeg import ffmpeg_exe
from evalkit.record.io import atomic_output


def side_by_side(left: Path, right: Path, out: Path, frames: int, audio_from_right: bool = True) -> Path:
    """Write ``out`` (H.264 MP4): ``left`` and ``right`` stacked horizontally, ``frames`` frames long.

    Both videos must have the same height; the audio comes from ``right`` when it has one.
    """
    with atomic_output(out) as tmp:
        _stack(left, right, tmp, frames, audio_from_right)
    return out


def _stack(left: Path, right: Path, tmp: Path, frames: int, audio_from_right: bool) -> None:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(left), "-i", str(right),
           "-filter_complex", "[0:v][1:v]hstack=inputs=2,pad=ceil(iw/2)*2:ceil(ih/2)*2[v]", "-map", "[v]"]
    if audio_from_right:
        cmd += ["-map", "1:a?", "-c:a", "aac", "-b:a", "96k"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(f"ffmpeg could not stack {left} and {right}: {result.stderr.strip()[-300:]}")
