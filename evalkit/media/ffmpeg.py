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
        _check_ffmpeg(chosen)
        return chosen
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=4)
def _check_ffmpeg(exe: str) -> None:
    """A chosen ffmpeg (``--ffmpeg``, $EVALKIT_FFMPEG) answers ``-version`` as ffmpeg does: otherwise every video
    would be blamed for what the binary does (``--ffmpeg /bin/false`` reads no video)."""
    try:
        result = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False, timeout=60)
        first = (result.stdout.strip().splitlines() or [""])[0]
        why = None if first.startswith("ffmpeg version") else (
            f"`{exe} -version` exits {result.returncode} and prints {first[:60]!r}" if first else
            f"`{exe} -version` exits {result.returncode} and prints no ffmpeg version")
    except (OSError, subprocess.SubprocessError) as exc:
        why = f"it cannot be run ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    if why:
        raise UserError(f"--ffmpeg / {FFMPEG_ENV} {exe}: not a working ffmpeg: {why}; give the path of an ffmpeg "
                        "binary, or leave it out to use the one evalkit ships")


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
    frames: int  # packets the container holds (counted without decoding)
    has_audio: bool
    duration_seconds: float | None = None  # the video stream's duration as the file states it, if it does

    @property
    def claimed_frames(self) -> int:
        """Frames the file says it has: its packets, or its stated duration x fps when that is more (a file cut
        short keeps the duration of its header)."""
        stated = round(self.duration_seconds * self.fps) if self.duration_seconds else 0
        return max(self.frames, stated)


_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)")
_FRAMES = re.compile(r"frame=\s*(\d+)")
_STREAM_DURATION = re.compile(r"^\s*DURATION\s*:\s*(\d+):(\d+):([\d.]+)", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


def _stated_duration(err: str, has_audio: bool) -> float | None:
    """The video stream's own DURATION tag (Matroska), else the container's duration when the file holds no
    audio (with audio, the container's duration may be the audio's)."""
    header = err.split("Stream mapping:", 1)[0]
    video_part = header.split(": Video:", 1)[1] if ": Video:" in header else ""
    match = _STREAM_DURATION.search(video_part.split("Stream #", 1)[0]) or (
        None if has_audio else _DURATION.search(header))
    if match is None:
        return None
    h, m, sec = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(sec)


def probe_video(path: Path) -> VideoInfo:
    """Size, frame rate, frame count and audio presence of ``path``'s first video stream."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"video file not found: {path}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    err = result.stderr
    stream = next((line for line in err.splitlines() if _STREAM.search(line)), None)
    header = err.split("Stream mapping:", 1)[0]
    if stream is None and re.search(r"^Input #0", header, re.MULTILINE) and ": Video:" not in header:
        what = "sound only" if re.search(r"Stream #\d+:\d+.*?: Audio:", header) else "no stream ffmpeg shows"
        raise UserError(f"cannot read video {path}: it holds no video stream ({what}); expected a video file (the "
                        "template or ground truth), not an audio file")
    if result.returncode != 0 or stream is None:
        last = err.strip().splitlines()[-1] if err.strip() else "no output"
        raise UserError(f"cannot read video {path}: ffmpeg says: {last}")
    w, h = map(int, _STREAM.search(stream).groups())
    fps_match = _FPS.search(stream)
    frames = _FRAMES.findall(err)
    if fps_match is None or not frames:
        raise UserError(f"cannot read video {path}: no frame rate or frame count in ffmpeg's report")
    if int(frames[-1]) == 0:
        raise UserError(f"cannot read video {path}: its video stream holds no frames (an empty, cut or damaged "
                        "file; export the video again)")
    has_audio = bool(re.search(r"Stream #\d+:\d+.*?: Audio:", err))
    return VideoInfo(
        path=path,
        width=w,
        height=h,
        fps=float(fps_match.group(1)),
        frames=int(frames[-1]),
        has_audio=has_audio,
        duration_seconds=_stated_duration(err, has_audio),
    )
