"""Stage 5: decode the template video, one RGB frame at a time.

Frames stream from an ffmpeg pipe into one reused buffer; nothing holds the
whole video. When the audio drives more frames than the template has, the
template is walked forward and back (0, 1, ..., T-1, T-2, ..., 0, 1, ...):
then the decoded frames are spilled once to a temporary file (``SpilledFrames``)
and read back by index, still without holding them in memory: the file is read,
not mapped, so its pages never count as the process's resident memory.

Within a run (``decoded_once``), each input video is decoded once: preflight's
check that it decodes writes its frames to a raw file in a temporary folder, and
every later reader of that video (the template walk, the ground truth, the viewer
pass, the report's thumbnails, in any worker process of the run) reads that file
instead of starting a decoder. The bytes are the ones the decoder gives, so every
number is the same; videos larger than ``DECODED_ONCE_MAX_BYTES`` stream as before. Where the run reads only
the first frames of a video (``keep_frames``: a template walk that never turns back, a ground truth compared on
as many frames as the audio drives), only those are kept (a *head*); preflight still decodes every frame to check
the video, and a reader that goes past the head (none in a run that preflight sized) decodes the rest itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ffmpeg
import numpy as np

from evalkit.errors import UserError
from evalkit.media.ffmpeg import VideoInfo, ffmpeg_exe

FRAME_COUNT_SLACK = 1  # ffmpeg states durations to 10 ms: duration x fps is exact to within a frame up to 100 fps
_DECODED = re.compile(r"frame=\s*(\d+)")


# --- each input video decoded once per run ---------------------------------------------------------------

DECODED_ONCE_ENV = "EVALKIT_DECODED_FRAMES"  # the run's folder of decoded videos (worker processes inherit it)
DECODED_ONCE_MAX_BYTES = 2 << 30  # raw rgb24 kept per run, all videos together (the folder may be in memory,
# on a tmpfs): a video that does not fit is decoded by each of its readers, as without the folder


@contextmanager
def decoded_once():
    """Within this block, videos that ``check_decodes(..., keep=True)`` accepted are read from their decoded
    frames instead of being decoded again (``FrameReader``, ``SpilledFrames``). The folder is removed after."""
    folder = tempfile.mkdtemp(prefix="evalkit-decoded-")
    before = os.environ.get(DECODED_ONCE_ENV)
    os.environ[DECODED_ONCE_ENV] = folder
    try:
        yield Path(folder)
    finally:
        if before is None:
            os.environ.pop(DECODED_ONCE_ENV, None)
        else:
            os.environ[DECODED_ONCE_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


def _decoded_name(info: VideoInfo) -> str | None:
    """The decoded file's name for ``info``'s video as it is now (path, size and modification time), or None
    outside ``decoded_once``."""
    folder = os.environ.get(DECODED_ONCE_ENV)
    if not folder:
        return None
    try:
        stat = os.stat(info.path)
    except OSError:
        return None
    key = f"{os.path.realpath(info.path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{info.width}x{info.height}"
    return os.path.join(folder, hashlib.sha256(key.encode()).hexdigest()[:32] + ".rgb24")


def decoded_frames_file(info: VideoInfo) -> str | None:
    """The file of all of ``info``'s decoded frames (rgb24, frame after frame) when this run holds one, else
    None (also where the run keeps only the first frames: ``decoded_head``)."""
    name = _decoded_name(info)
    return name if name is not None and os.path.isfile(name) else None


def _head_name(name: str) -> str:
    return name[: -len(".rgb24")] + ".head.rgb24"


def decoded_head(info: VideoInfo) -> tuple[str, int, bool] | None:
    """``(file, frames it holds, whether that is every frame)`` of ``info``'s decoded frames kept in this run:
    all of them (``decoded_frames_file``) or the first ones only (what the run reads); None where none are kept."""
    name = _decoded_name(info)
    if name is None:
        return None
    frame_bytes = info.width * info.height * 3
    for path, whole in ((name, True), (_head_name(name), False)):
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        return path, size // frame_bytes, whole
    return None


def _keep_target(info: VideoInfo, frames: int | None = None) -> str | None:
    """Where ``check_decodes`` may keep ``info``'s decoded frames (all of them; the first ``frames`` go to
    ``_head_name`` of it): inside ``decoded_once``, for a video small enough, with room on the disk; else None."""
    name = _decoded_name(info)
    if name is None or os.path.isfile(name) or os.path.isfile(_head_name(name)):
        return None
    folder = os.path.dirname(name)
    kept_frames = info.claimed_frames + FRAME_COUNT_SLACK if frames is None else min(
        frames, info.claimed_frames + FRAME_COUNT_SLACK)
    size = info.width * info.height * 3 * kept_frames
    kept = sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
    if kept + size > DECODED_ONCE_MAX_BYTES or shutil.disk_usage(folder).free < 2 * size:
        return None
    return name


def decoded_frame_count(info: VideoInfo, keep: str | None = None, keep_frames: int | None = None
                        ) -> tuple[int, list[str]]:
    """Decode every frame of the first video stream: how many decode, and ffmpeg's error lines (a damaged
    file decodes with errors, e.g. 'slice CRC mismatch', even when every frame comes out). The frames go
    nowhere, or as rgb24 into the file ``keep`` (``FrameReader``'s own conversion): all of them, or the first
    ``keep_frames`` (the decoder still decodes every frame, for the count and the errors; only those are
    converted and written)."""
    rgb24 = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-y", keep]
    if keep is None:
        output = ["-f", "null", "-"]
    elif keep_frames is None:
        output = rgb24
    else:  # the null output first: -stats counts the first output's frames, i.e. every decoded frame
        output = ["-f", "null", "-", "-map", "0:v:0", "-frames:v", str(keep_frames), *rgb24]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-stats", "-i", str(info.path),
           "-map", "0:v:0", *output]
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    lines = [line.strip() for line in re.split(r"[\r\n]+", result.stderr) if line.strip()]
    counts = [int(m.group(1)) for line in lines if (m := _DECODED.match(line))]
    errors = [_without_address(line) for line in lines if not _DECODED.match(line)]
    return (counts[-1] if counts else 0), errors


def _without_address(line: str) -> str:
    """'[ffv1 @ 0x55..] slice CRC mismatch' -> '[ffv1] slice CRC mismatch' (stable across runs)."""
    return re.sub(r" @ 0x[0-9a-f]+\]", "]", line)


def check_decodes(info: VideoInfo, what: str = "video", keep: bool = False, keep_frames: int | None = None) -> int:
    """Raise a UserError when ``info``'s video decodes fewer frames than it claims (cut short) or decodes with
    errors (damaged in the middle); returns the decoded count. With ``keep``, inside ``decoded_once``, a video
    that decodes cleanly keeps its decoded frames for the run's later readers: all of them, or with
    ``keep_frames`` the first that many (the frames the run reads; every frame is decoded and checked all the
    same)."""
    if keep_frames is not None and keep_frames >= info.claimed_frames + FRAME_COUNT_SLACK:
        keep_frames = None  # the whole video
    target = _keep_target(info, keep_frames) if keep else None
    partial = None if target is None else f"{target}.{os.getpid()}.partial"
    try:
        decoded, errors = decoded_frame_count(info, partial, keep_frames)
        problem = _decode_problem(info, what, decoded, errors)
        if problem is not None and partial is not None:  # keeping may be what failed (a full disk): judge the
            if os.path.exists(partial):                    # video on a plain decode
                os.unlink(partial)
            partial = None
            decoded, errors = decoded_frame_count(info)
            problem = _decode_problem(info, what, decoded, errors)
        if problem is not None:
            raise UserError(problem)
        held = decoded if keep_frames is None else min(decoded, keep_frames)
        if partial is not None and os.path.getsize(partial) == held * info.width * info.height * 3:
            # complete before it is visible: a worker never reads half a file
            os.replace(partial, target if held == decoded else _head_name(target))
    finally:
        if partial is not None and os.path.exists(partial):
            os.unlink(partial)
    return decoded


def _decode_problem(info: VideoInfo, what: str, decoded: int, errors: list[str]) -> str | None:
    """What is wrong with a video that decoded ``decoded`` frames with ffmpeg's ``errors``, or None."""
    claimed = info.claimed_frames
    if decoded < claimed - FRAME_COUNT_SLACK or decoded == 0:
        why = f"; ffmpeg: {errors[0]}" if errors else ""
        return (f"{what} {info.path}: only {decoded} of the {claimed} frames it claims decode (the file is "
                f"cut short or damaged{why}); export it again")
    if errors:
        return (f"{what} {info.path}: damaged: {decoded} of {claimed} frames decode, but with errors "
                f"(ffmpeg: {errors[0]}); export it again")
    return None


class FrameReader:
    """Reads rgb24 frames of ``info.path`` in order; use as a context manager.

    With ``window`` (x0, y0, x1, y1, half-open), each frame read is that part of the frame only: the decoder
    converts only the window's even-aligned surroundings to rgb24 and then crops, so the pixels are exactly those
    of the whole frame read and sliced; only the window crosses the pipe. From a video decoded once in this run,
    only the window's rows are read from its file; past the frames that file holds (a head: ``decoded_head``),
    a decoder reads on from the start, skipping the frames already read.
    """

    def __init__(self, info: VideoInfo, window: tuple[int, int, int, int] | None = None):
        self.info = info
        if window is not None and tuple(window) == (0, 0, info.width, info.height):
            window = None
        self.window = None if window is None else tuple(int(v) for v in window)
        if self.window is not None:
            x0, y0, x1, y1 = self.window
            if not (0 <= x0 < x1 <= info.width and 0 <= y0 < y1 <= info.height):
                raise ValueError(f"window {self.window} is not inside a {info.width}x{info.height} frame")
            self.shape = (y1 - y0, x1 - x0, 3)
        else:
            self.shape = (info.height, info.width, 3)
        self._frame_bytes = self.shape[0] * self.shape[1] * 3
        self._process = None
        self._decoded = None
        self._band = None  # a window's rows of one whole frame, read from a decoded-once file
        self._index = 0  # frames read so far
        self._held, self._whole = 0, True  # frames the decoded-once file holds; whether that is all of them
        self._stderr_tail: deque[bytes] = deque(maxlen=20)

    def __enter__(self) -> "FrameReader":
        decoded = decoded_head(self.info)
        if decoded is not None:  # decoded once already in this run: read the frames, start no decoder
            path, self._held, self._whole = decoded
            self._decoded = open(path, "rb", buffering=0)  # noqa: SIM115 (closed in __exit__)
            if self.window is not None:
                x0, y0, x1, y1 = self.window
                self._band = np.empty((y1 - y0, self.info.width, 3), np.uint8)
            return self
        self._start_decoder()
        return self

    def _start_decoder(self) -> None:
        # One decoding thread: the same pixels (decoding is exact), less CPU than threads waiting for each other.
        stream = ffmpeg.input(str(self.info.path), threads=1)["v:0"]
        if self.window is not None:
            x0, y0, x1, y1 = self.window
            # Cut the window's even-aligned surroundings out of the decoded picture first, so that only they are
            # converted to rgb24: at even offsets a 4:2:0 or 4:2:2 picture's chroma samples stay those of the
            # same pixels, and ffmpeg's conversion gives each pixel exactly what converting the whole frame
            # gives it (tests/media/test_decode.py); then the window itself.
            ex0, ey0 = x0 - x0 % 2, y0 - y0 % 2
            ex1, ey1 = min(x1 + x1 % 2, self.info.width), min(y1 + y1 % 2, self.info.height)
            stream = (stream.filter("crop", ex1 - ex0, ey1 - ey0, ex0, ey0, exact=1).filter("format", "rgb24")
                      .filter("crop", x1 - x0, y1 - y0, x0 - ex0, y0 - ey0, exact=1))
        stream = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", loglevel="error")
        self._process = stream.run_async(cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _past_the_head(self) -> None:
        """The decoded-once file holds only the first ``self._held`` frames: decode on from there."""
        self._decoded.close()
        self._decoded, self._band = None, None
        self._start_decoder()
        skip = np.empty(self.shape, np.uint8)
        for i in range(self._held):
            if not self._read_pipe(skip):
                raise UserError(f"cannot read video {self.info.path}: it ended at frame {i}, before frame "
                                f"{self._held} that this run decoded earlier ({self._why()})")

    def _drain_stderr(self) -> None:
        with self._process.stderr:  # closed at EOF: no unclosed pipe left behind
            for line in self._process.stderr:
                self._stderr_tail.append(line)

    def read_into(self, buffer: np.ndarray) -> bool:
        """Fill ``buffer`` (``self.shape``, uint8) with the next frame; False at the end of the video."""
        if self._decoded is not None and not self._whole and self._index >= self._held:
            self._past_the_head()
        if self._band is not None:
            got = self._read_window(buffer)
        else:
            got = self._read_pipe(buffer)
        self._index += got
        return got

    def _read_pipe(self, buffer: np.ndarray) -> bool:
        view = memoryview(buffer.reshape(-1))
        source = self._decoded if self._decoded is not None else self._process.stdout
        got = 0
        while got < self._frame_bytes:
            n = source.readinto(view[got:])
            if not n:
                break
            got += n
        if got == 0:
            return False
        if got != self._frame_bytes:
            raise UserError(f"cannot read video {self.info.path}: it ends inside a frame ({self._why()})")
        return True

    def _read_window(self, buffer: np.ndarray) -> bool:
        x0, y0, x1, y1 = self.window
        row = self.info.width * 3
        offset = (self._index * self.info.height + y0) * row
        got = os.preadv(self._decoded.fileno(), [memoryview(self._band.reshape(-1))], offset)
        if got == 0:
            return False
        if got != self._band.nbytes:
            raise UserError(f"cannot read video {self.info.path}: it ends inside a frame (decoded file cut short)")
        np.copyto(buffer, self._band[:, x0:x1])
        return True

    def _why(self) -> str:
        return b"".join(self._stderr_tail).decode(errors="replace").strip() or "no message from ffmpeg"

    def __exit__(self, *exc) -> None:
        if self._decoded is not None:
            self._decoded.close()
        if self._process is not None:
            self._process.stdout.close()
            self._process.kill()
            self._process.wait()


def frames_at(info: VideoInfo, indices) -> Iterator[np.ndarray]:
    """The frames of ``info`` at ``indices``, in that order, each in a new array; lazily: a consumer that stops
    early decodes no further. From a video decoded once in this run, each frame is read by its offset; otherwise
    a decoder reads forward to it (and starts again for an index behind the last one)."""
    decoded = decoded_head(info)
    size = info.width * info.height * 3
    reader, at = None, 0
    try:
        for index in indices:
            frame = np.empty((info.height, info.width, 3), np.uint8)
            if decoded is not None and (decoded[2] or index < decoded[1]):
                with open(decoded[0], "rb", buffering=0) as f:
                    if os.preadv(f.fileno(), [memoryview(frame.reshape(-1))], index * size) != size:
                        raise UserError(f"video {info.path} has no frame {index}")
                yield frame
                continue
            if reader is None or index < at:
                if reader is not None:
                    reader.__exit__(None, None, None)
                reader, at = FrameReader(info).__enter__(), 0
            while at <= index:
                if not reader.read_into(frame):
                    raise UserError(f"video {info.path} ended at frame {at}, before frame {index}")
                at += 1
            yield frame
    finally:
        if reader is not None:
            reader.__exit__(None, None, None)


def ping_pong_index(frame: int, template_frames: int) -> int:
    """Template frame shown at output ``frame``: 0..T-1, then back T-2..0, then forward again."""
    if template_frames == 1:
        return 0
    period = 2 * (template_frames - 1)
    k = frame % period
    return k if k < template_frames else period - k


class SpilledFrames:
    """Random access to every frame of a video: decoded once into a temporary file, read back by index.

    ``read_into(index, buffer)`` reads one frame with ``os.preadv`` into the caller's buffer: the operating
    system's page cache makes it as fast as memory, and the process's resident memory does not grow with
    the video's length (a memory map would count every page it touched).
    """

    def __init__(self, info: VideoInfo, on_frame=None):
        """Decode ``info`` into the spill; ``on_frame(index, frame)`` sees each frame as it is decoded."""
        self.info = info
        self.frames = info.frames
        self._frame_bytes = info.width * info.height * 3
        decoded = decoded_frames_file(info)
        if decoded is not None:  # decoded once already in this run: that file is the spill
            self._file = open(decoded, "rb", buffering=0)  # noqa: SIM115 (closed in close)
            if on_frame is not None:
                buffer = np.empty((info.height, info.width, 3), np.uint8)
                for i in range(info.frames):
                    on_frame(i, self.read_into(i, buffer))
            return
        self._file = tempfile.TemporaryFile(prefix="evalkit-frames-")
        buffer = np.empty((info.height, info.width, 3), np.uint8)
        try:
            with FrameReader(info) as reader:
                for i in range(info.frames):
                    if not reader.read_into(buffer):
                        raise UserError(f"video {info.path} ended at frame {i}, expected {info.frames} frames")
                    self._file.write(buffer.data)
                    if on_frame is not None:
                        on_frame(i, buffer)
            self._file.flush()
        except BaseException:
            self.close()
            raise

    def read_into(self, index: int, buffer: np.ndarray) -> np.ndarray:
        view = memoryview(buffer.reshape(-1))
        got = os.preadv(self._file.fileno(), [view], index * self._frame_bytes)
        if got != self._frame_bytes:
            raise RuntimeError(f"spilled frame {index} of {self.info.path}: read {got} of {self._frame_bytes} bytes")
        return buffer

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SpilledFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def template_frames(info: VideoInfo, needed: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(template_index, frame)`` for ``needed`` output frames.

    The yielded array is reused: copy it if it must outlive the next step.
    """
    buffer = np.empty((info.height, info.width, 3), dtype=np.uint8)
    with FrameReader(info) as reader:
        for i in range(min(needed, info.frames)):
            if not reader.read_into(buffer):
                raise UserError(f"video {info.path} ended at frame {i}, expected {info.frames} frames")
            yield i, buffer
    if needed <= info.frames:
        return
    with SpilledFrames(info) as spill:  # the walk turns back: random access from here on
        for out in range(info.frames, needed):
            t = ping_pong_index(out, info.frames)
            yield t, spill.read_into(t, buffer)
