"""Encode and decode through real ffmpeg: lossless round trip, stream facts, the template walked longer than it is."""

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


@pytest.mark.parametrize("size", [(64, 48), (65, 47)])  # odd sizes too: a frame file has the video's own size
def test_a_runs_frame_file_decodes_to_the_same_bytes_and_is_written_alike_twice(tmp_path, size):
    """kind "frames" (x264's lossless mode, RGB): noise, the hardest case for a lossless coder, back exactly;
    the same frames give the same file (no time or version in the container)."""
    w, h = size
    frames = np.random.default_rng(2).integers(0, 256, (9, h, w, 3), dtype=np.uint8)
    frames[4:] = frames[4]  # still frames too (x264's skip blocks)
    paths = [tmp_path / f"{name}.mkv" for name in ("a", "b")]
    for path in paths:
        with VideoWriter(path, w, h, 25, kind="frames") as writer:
            for f in frames:
                writer.write(f)
    assert np.array_equal(decode(paths[0]), frames)
    assert paths[0].read_bytes() == paths[1].read_bytes()


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
