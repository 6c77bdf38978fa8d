"""Stage 9: encode frames to files through an ffmpeg pipe.

Two kinds of output: the H.264 (yuv420p) MP4 with AAC audio that people watch,
and lossless Matroska files of the exact generated pixels that metrics
read back (H.264 in RGB at QP 0), or FFV1 for the fixtures' clip. Frames go in as rgb24, one at a time.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import ffmpeg
import numpy as np

from evalkit.errors import UserError
from evalkit.media.ffmpeg import ffmpeg_exe

# Flags that make the lossless Matroska output the same bytes on every run (no
# encoder version string or creation time in the container).
BITEXACT = {"fflags": "+bitexact", "flags": "+bitexact", "map_metadata": "-1"}

MP4_THREADS = 1
"""x264's threads for the MP4s people watch (output.mp4, side_by_side.mp4): one, so that the same frames give the
same bytes on every machine (x264's default takes its thread count from the machine's cores, and its output
depends on that count: here the default's bytes and one thread's differ, and with them the MP4's PSNR and SSIM),
at less CPU than threads spent waiting for each other (at 1440x1080, superfast: 13.8 against 15.9 CPU-ms a frame
here; docs/speed.md)."""


class VideoWriter:
    """Write rgb24 frames of one size to ``path``; use as a context manager.

    ``kind`` is ``"mp4"`` (H.264 yuv420p on MP4_THREADS threads, plus AAC from ``audio`` when given),
    ``"frames"`` (a run's frame files: H.264 in RGB at QP 0, x264's lossless mode, in Matroska: decodes back to
    the same bytes; at 320x320 about a fifth of FFV1's encoding CPU and a third of its decoding CPU on this
    project's machine, and a smaller file) or ``"lossless"`` (FFV1 in Matroska, planar RGB: decodes back to the
    same bytes; the fixtures' clip, for tools that read FFV1 more widely than lossless RGB H.264).
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, kind: str = "mp4",
                 audio: Path | None = None, crf: int = 18, preset: str = "veryfast"):
        self.path = Path(path)
        self.size = (width, height)
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
        if kind == "mp4":
            streams = [video.video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")]
            opts = {"vcodec": "libx264", "pix_fmt": "yuv420p", "crf": crf, "preset": preset,
                    "threads": MP4_THREADS, "movflags": "+faststart", "r": fps}
            if audio is not None:
                streams.append(ffmpeg.input(str(audio)).audio)
                opts.update(acodec="aac", audio_bitrate="128k")
        elif kind == "frames":
            streams = [video]
            opts = {"vcodec": "libx264rgb", "qp": 0, "preset": "ultrafast", "pix_fmt": "rgb24", "threads": 1,
                    **BITEXACT}
        elif kind == "lossless":
            streams = [video]
            opts = {"vcodec": "ffv1", "level": 3, "pix_fmt": "gbrp", "threads": 1, "slices": 4, **BITEXACT}
        else:
            raise ValueError(f"unknown video kind {kind!r}")
        self._stream = ffmpeg.output(*streams, str(self.path), loglevel="error", **opts).overwrite_output()
        self._process = None
        self._stderr_tail: deque[bytes] = deque(maxlen=20)
        self.frames_written = 0

    def __enter__(self) -> "VideoWriter":
        self._process = self._stream.run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True)
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        return self

    def _drain_stderr(self) -> None:
        with self._process.stderr:  # closed at EOF: no unclosed pipe left behind
            for line in self._process.stderr:
                self._stderr_tail.append(line)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not fit writer {self.size}")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            self._process.wait()
            self._drain.join()
            raise UserError(f"ffmpeg stopped writing {self.path}: {self._why()}") from None
        self.frames_written += 1

    def _why(self) -> str:
        return b"".join(self._stderr_tail).decode(errors="replace").strip() or "no message from ffmpeg"

    def __exit__(self, exc_type, *rest) -> None:
        self._process.stdin.close()
        code = self._process.wait()
        self._drain.join()
        if exc_type is None and code != 0:
            raise UserError(f"ffmpeg failed writing {self.path} (exit {code}): {self._why()}")
