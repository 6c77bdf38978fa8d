"""Decode and encode through real ffmpeg: lossless round trip, stream facts, ping-pong walk."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.errors import UserError
from evalkit.media.ffmpeg import probe_video
from evalkit.media.decode import ping_pong_index, template_frames
from evalkit.media.encode import VideoWriter
from tests.conftest import decode


@pytest.fixture(scope="module")
def random_clip(tmp_path_factory):
    frames = np.random.default_rng(1).integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    with VideoWriter(path, 64, 48, 25, kind="lossless") as writer:
        for f in frames:
            writer.write(f)
    return path, frames


def test_lossless_round_trip_is_exact(random_clip):
    path, frames = random_clip
    assert np.array_equal(decode(path), frames)


def test_probe_reads_size_rate_and_frame_count(random_clip):
    info = probe_video(random_clip[0])
    assert (info.width, info.height, info.fps, info.frames, info.has_audio) == (64, 48, 25.0, 12, False)


def test_mp4_has_h264_video_and_aac_audio(tmp_path, fixtures_dir):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 64, 48, 25, kind="mp4", audio=fixtures_dir / "clip" / "speech.wav") as writer:
        for _ in range(10):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    info = probe_video(path)
    assert info.has_audio and info.frames == 10 and (info.width, info.height) == (64, 48)


def test_ping_pong_walks_forward_and_back():
    assert [ping_pong_index(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [ping_pong_index(i, 1) for i in range(3)] == [0, 0, 0]


def test_template_longer_walk_yields_the_right_frames(random_clip):
    path, frames = random_clip
    info = probe_video(path)
    walked = [(t, f.copy()) for t, f in template_frames(info, 30)]
    assert [t for t, _ in walked] == [ping_pong_index(i, 12) for i in range(30)]
    assert all(np.array_equal(f, frames[t]) for t, f in walked)


def test_unreadable_video_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match=r"cannot read video .*bad.mp4"):
        probe_video(bad)


def test_face_window_holds_every_box_with_a_margin_and_even_sides():
    from evalkit.media.frames import face_window

    # union x 166..464, y 171..464 (298 x 293); margin 0.15 x 298 = 44.7 on every side, clipped at the bottom
    boxes = np.array([[176, 176, 464, 464], [166, 171, 454, 459]])
    assert face_window(boxes, 640, 480) == (121, 126, 509, 480)
    assert face_window(boxes, 640, 480, margin=0) == (166, 171, 464, 465)  # odd height 293: grown by one
    # odd sides at the frame's edges: grown where there is room, else shrunk
    assert face_window(np.array([[0, 0, 9, 7]]), 9, 7, margin=0) == (0, 0, 8, 6)
    assert face_window(np.array([[1, 2, 10, 9]]), 10, 9, margin=0) == (0, 1, 10, 9)
    assert face_window(np.array([[-50, -50, 700, 500]]), 640, 480) == (0, 0, 640, 480)  # clipped to the frame
    assert face_window(np.zeros((0, 4)), 64, 48) == (0, 0, 64, 48)  # no box: the frame
