"""Where ffmpeg comes from, and the stream facts evalkit reads with it.

The binary is imageio-ffmpeg's (installed from PyPI with evalkit) unless the
environment variable ``EVALKIT_FFMPEG`` (or ``evalkit --ffmpeg PATH``) names
another. That binary ships without ffprobe, so stream facts are read from
ffmpeg's own stderr: ``ffmpeg -i FILE -map 0:v:0 -c copy -f null -`` prints the
stream line (size, fps) and, at the end, how many frames it copied.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evalkit.errors import UserError

FFMPEG_ENV = "EVALKIT_FFMPEG"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use."""
    chosen = os.environ.get(FFMPEG_ENV)
    if chosen:
        if not Path(chosen).is_file():
            raise UserError(f"{FFMPEG_ENV}={chosen}: no such file (unset it to use the ffmpeg that ships with evalkit)")
        return chosen
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=4)
def _version_of(exe: str) -> str:
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "unknown"


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version``."""
    return _version_of(ffmpeg_exe())


@dataclass(frozen=True)
class VideoInfo:
    """Facts of a video file's first video stream."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    has_audio: bool


_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)")
_FRAMES = re.compile(r"frame=\s*(\d+)")


def probe_video(path: Path) -> VideoInfo:
    """Size, frame rate, frame count and audio presence of ``path``'s first video stream."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"video file not found: {path}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    err = result.stderr
    stream = next((line for line in err.splitlines() if _STREAM.search(line)), None)
    if result.returncode != 0 or stream is None:
        last = err.strip().splitlines()[-1] if err.strip() else "no output"
        raise UserError(f"cannot read video {path}: ffmpeg says: {last}")
    w, h = map(int, _STREAM.search(stream).groups())
    fps_match = _FPS.search(stream)
    frames = _FRAMES.findall(err)
    if fps_match is None or not frames:
        raise UserError(f"cannot read video {path}: no frame rate or frame count in ffmpeg's report")
    return VideoInfo(
        path=path,
        width=w,
        height=h,
        fps=float(fps_match.group(1)),
        frames=int(frames[-1]),
        has_audio=bool(re.search(r"Stream #\d+:\d+.*?: Audio:", err)),
    )
