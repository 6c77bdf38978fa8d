"""Stage 5: decode the template video, one RGB frame at a time.

Frames stream from an ffmpeg pipe into one reused buffer; nothing holds the
whole video. When the audio drives more frames than the template has, the
template is walked forward and back (0, 1, ..., T-1, T-2, ..., 0, 1, ...):
then the decoded frames are spilled once to a disk-backed array so that the
backward walk can read them, still without holding them in memory.
"""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import ffmpeg
import numpy as np

from evalkit.errors import UserError
from evalkit.ffmpeg_binary import VideoInfo, ffmpeg_exe


class FrameReader:
    """Reads rgb24 frames of ``info.path`` in order; use as a context manager."""

    def __init__(self, info: VideoInfo):
        self.info = info
        self._frame_bytes = info.width * info.height * 3
        self._process = None
        self._stderr_tail: deque[bytes] = deque(maxlen=20)

    def __enter__(self) -> "FrameReader":
        stream = ffmpeg.input(str(self.info.path)).output(
            "pipe:", format="rawvideo", pix_fmt="rgb24", map="0:v:0", loglevel="error"
        )
        self._process = stream.run_async(cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self

    def _drain_stderr(self) -> None:
        for line in self._process.stderr:
            self._stderr_tail.append(line)

    def read_into(self, buffer: np.ndarray) -> bool:
        """Fill ``buffer`` (H, W, 3 uint8) with the next frame; False at the end of the video."""
        view = memoryview(buffer.reshape(-1))
        got = 0
        while got < self._frame_bytes:
            n = self._process.stdout.readinto(view[got:])
            if not n:
                break
            got += n
        if got == 0:
            return False
        if got != self._frame_bytes:
            raise UserError(f"cannot read video {self.info.path}: it ends inside a frame ({self._why()})")
        return True

    def _why(self) -> str:
        return b"".join(self._stderr_tail).decode(errors="replace").strip() or "no message from ffmpeg"

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.stdout.close()
            self._process.kill()
            self._process.wait()


def ping_pong_index(frame: int, template_frames: int) -> int:
    """Template frame shown at output ``frame``: 0..T-1, then back T-2..0, then forward again."""
    if template_frames == 1:
        return 0
    period = 2 * (template_frames - 1)
    k = frame % period
    return k if k < template_frames else period - k


def template_frames(info: VideoInfo, needed: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(template_index, frame)`` for ``needed`` output frames.

    The yielded array is reused: copy it if it must outlive the next step.
    """
    buffer = np.empty((info.height, info.width, 3), dtype=np.uint8)
    if needed <= info.frames:
        with FrameReader(info) as reader:
            for i in range(needed):
                if not reader.read_into(buffer):
                    raise UserError(f"video {info.path} ended at frame {i}, expected {info.frames} frames")
                yield i, buffer
        return
    with tempfile.TemporaryDirectory(prefix="evalkit-frames-") as tmp:
        spill = np.lib.format.open_memmap(
            Path(tmp) / "frames.npy", mode="w+", dtype=np.uint8, shape=(info.frames, info.height, info.width, 3)
        )
        with FrameReader(info) as reader:
            for i in range(info.frames):
                if not reader.read_into(spill[i]):
                    raise UserError(f"video {info.path} ended at frame {i}, expected {info.frames} frames")
                yield i, spill[i]
        for out in range(info.frames, needed):
            t = ping_pong_index(out, info.frames)
            buffer[:] = spill[t]
            yield t, buffer
        del spill
