"""Each input video decoded once per run (media.decode.decoded_once): the frames read back are the decoder's own
bytes, for a lossless video and for an H.264 one (whose rgb24 comes through ffmpeg's colour conversion); the
template's ping-pong walk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from evalkit.errors import UserError
from evalkit.media.decode import (DECODED_ONCE_ENV, FrameReader, SpilledFrames, check_decodes, decoded_frames_file,
                                  decoded_head, decoded_once, frames_at, ping_pong_index)
from evalkit.media.encode import VideoWriter
from evalkit.media.ffmpeg import probe_video


def _read_all(info) -> np.ndarray:
    frames = []
    buffer = np.empty((info.height, info.width, 3), np.uint8)
    with FrameReader(info) as reader:
        while reader.read_into(buffer):
            frames.append(buffer.copy())
    return np.stack(frames)


@pytest.fixture(scope="module", params=["lossless", "mp4"])
def clip(request, tmp_path_factory):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    frames = np.clip(base.astype(int) + rng.integers(-20, 21, (9, 48, 64, 3)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("clip") / ("clip.mkv" if request.param == "lossless" else "clip.mp4")
    with VideoWriter(path, 64, 48, 25, kind=request.param) as writer:
        for frame in frames:
            writer.write(frame)
    return probe_video(path)


def test_frames_read_back_are_the_decoders_bytes(clip):
    decoded = _read_all(clip)  # outside a run: ffmpeg decodes
    with decoded_once() as folder:
        assert decoded_frames_file(clip) is None  # not kept until preflight accepted it
        assert check_decodes(clip, keep=True) == len(decoded)
        kept = decoded_frames_file(clip)
        assert kept is not None and Path(kept).parent == folder
        assert os.path.getsize(kept) == decoded.nbytes
        assert np.array_equal(_read_all(clip), decoded)
        buffer = np.empty_like(decoded[0])
        with SpilledFrames(clip) as spill:
            for i in (len(decoded) - 1, 0, 4):
                assert np.array_equal(spill.read_into(i, buffer), decoded[i])
    assert not folder.exists() and DECODED_ONCE_ENV not in os.environ


def test_a_head_keeps_the_first_frames_and_readers_read_on_past_it(clip):
    """Preflight keeps only the frames a run reads (keep_frames): every frame is still decoded and checked, the
    head holds the decoder's bytes of the first frames, and any reader past it gets the very same frames as a
    plain decode (the full frame, a window, by index, at random)."""
    decoded = _read_all(clip)
    with decoded_once() as folder:
        assert check_decodes(clip, keep=True, keep_frames=4) == len(decoded)
        assert decoded_frames_file(clip) is None  # not every frame: no whole file
        path, held, whole = decoded_head(clip)
        assert (held, whole) == (4, False) and Path(path).parent == folder
        assert os.path.getsize(path) == decoded[:4].nbytes
        assert np.array_equal(np.fromfile(path, np.uint8).reshape(decoded[:4].shape), decoded[:4])
        assert np.array_equal(_read_all(clip), decoded)
        window = (5, 7, 41, 30)
        with FrameReader(clip, window) as reader:
            buffer = np.empty(reader.shape, np.uint8)
            got = []
            while reader.read_into(buffer):
                got.append(buffer.copy())
        assert np.array_equal(np.stack(got), decoded[:, 7:30, 5:41])
        order = [6, 1, 3, 8, 0]
        assert np.array_equal(np.stack(list(frames_at(clip, order))), decoded[order])
        with SpilledFrames(clip) as spill:
            assert np.array_equal(spill.read_into(7, np.empty_like(decoded[0])), decoded[7])


@pytest.mark.parametrize("size", [(64, 48), (226, 130)])
def test_a_window_is_the_whole_frame_sliced_at_any_offset(tmp_path, size):
    """A window is decoded by converting only its even-aligned surroundings to rgb24: at odd and even offsets and
    sizes, up to the frame's edges, the pixels are those of the whole frame decoded and sliced (random pixels,
    so chroma taken from a neighbouring pixel would show), for H.264 4:2:0 and for lossless RGB."""
    w, h = size
    frames = np.random.default_rng(5).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    for kind in ("mp4", "lossless"):
        path = tmp_path / f"noise.{'mp4' if kind == 'mp4' else 'mkv'}"
        with VideoWriter(path, w, h, 25, kind=kind) as writer:
            for frame in frames:
                writer.write(frame)
        info = probe_video(path)
        whole = _read_all(info)
        for x0, y0, x1, y1 in ((5, 7, 41, 30), (0, 0, w - 1, h - 1), (1, 1, w, h), (10, 4, 38, 20), (3, 5, w, h - 2),
                               (w - 9, h - 7, w, h)):
            with FrameReader(info, (x0, y0, x1, y1)) as reader:
                buffer = np.empty(reader.shape, np.uint8)
                got = []
                while reader.read_into(buffer):
                    got.append(buffer.copy())
            assert np.array_equal(np.stack(got), whole[:, y0:y1, x0:x1]), (kind, (x0, y0, x1, y1))


def test_a_head_as_long_as_the_video_is_the_whole_file(clip):
    with decoded_once():
        check_decodes(clip, keep=True, keep_frames=clip.frames + 5)
        assert decoded_frames_file(clip) is not None and decoded_head(clip)[1:] == (clip.frames, True)


def test_a_damaged_video_is_refused_past_the_frames_kept(tmp_path, clip):
    cut = tmp_path / f"cut{clip.path.suffix}"
    data = clip.path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with decoded_once() as folder:
        with pytest.raises(UserError, match="frames it claims decode"):
            check_decodes(probe_video(cut), keep=True, keep_frames=1)
        assert list(folder.iterdir()) == []


def test_a_changed_file_is_decoded_again(clip, tmp_path):
    copy = tmp_path / clip.path.name
    copy.write_bytes(clip.path.read_bytes())
    info = probe_video(copy)
    with decoded_once():
        check_decodes(info, keep=True)
        assert decoded_frames_file(info) is not None
        os.utime(copy, ns=(0, 0))  # same bytes, another modification time: no longer the file that was decoded
        assert decoded_frames_file(info) is None


def test_a_damaged_video_keeps_nothing(tmp_path, clip):
    cut = tmp_path / f"cut{clip.path.suffix}"
    data = clip.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with decoded_once() as folder:
        with pytest.raises(UserError):
            check_decodes(probe_video(cut), keep=True)
        assert list(folder.iterdir()) == []


def test_videos_over_the_runs_budget_are_decoded_where_they_are_read(clip, monkeypatch):
    import evalkit.media.decode as decode

    frame_bytes = clip.width * clip.height * 3
    monkeypatch.setattr(decode, "DECODED_ONCE_MAX_BYTES", frame_bytes * clip.frames)  # less than frames + slack
    with decoded_once() as folder:
        assert check_decodes(clip, keep=True) == clip.frames  # still checked
        assert decoded_frames_file(clip) is None and list(folder.iterdir()) == []
        assert len(_read_all(clip)) == clip.frames  # and read through ffmpeg


def test_a_failure_to_keep_the_frames_is_not_blamed_on_the_video(clip, tmp_path, monkeypatch):
    import evalkit.media.decode as decode

    # where the frames cannot be written (as on a full disk): ffmpeg fails on its output, not on the video
    monkeypatch.setattr(decode, "_keep_target", lambda info, frames=None: str(tmp_path / "missing" / "frames.rgb24"))
    with decoded_once():
        assert check_decodes(clip, keep=True) == clip.frames
        assert decoded_frames_file(clip) is None


def test_ping_pong_walks_forward_and_back():
    assert [ping_pong_index(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [ping_pong_index(i, 1) for i in range(3)] == [0, 0, 0]
