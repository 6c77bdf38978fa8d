"""The built-in sync estimator on clips whose offset is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.pipeline.audio import load_audio
from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, load_crop_boxes
from evalkit.metrics.sync import RELIABLE_CONFIDENCE, SyncResult, estimate_sync
from tests.conftest import decode, real_file

SR = 16000


@pytest.fixture(scope="module")
def fixture_clip(fixtures_dir):
    """The fixture's ground-truth mouth crops (the contract's mouth_box) and its audio."""
    c = Contract()
    x1, y1, x2, y2 = c.mouth_box
    frames = decode(fixtures_dir / "clip" / "talking_head.mkv")
    boxes = load_crop_boxes(fixtures_dir / "clip" / "crop_boxes.txt")
    prep = CropPreparer(c)
    mouth = np.stack([prep.crop_frame(f, b)[y1:y2, x1:x2].copy() for f, b in zip(frames, boxes)])
    return mouth, load_audio(fixtures_dir / "clip" / "speech.wav", SR)


def shift_audio(wav: np.ndarray, seconds: float) -> np.ndarray:
    """Audio whose sound comes ``seconds`` earlier (positive) or later (negative) than in ``wav``.

    Sound earlier than the mouth means the mouth moves after its sound: offset +seconds.
    """
    s = int(round(seconds * SR))
    return wav[s:] if s >= 0 else np.concatenate([np.zeros(-s, np.float32), wav])


@pytest.mark.parametrize("k", range(-6, 7))
def test_fixture_clip_shifted_by_k_frames_gives_k_exactly(fixture_clip, k):
    mouth, wav = fixture_clip
    result = estimate_sync(shift_audio(wav, k / 25), SR, mouth, fps=25.0)
    assert not result.no_signal
    assert result.offset_frames == k and result.offset_ms == pytest.approx(k * 40.0)
    assert result.reliable and result.reason == ""
    assert result.confidence >= RELIABLE_CONFIDENCE  # a clean drawn mouth: the best lag stands far out
    assert len(result.curve) == len(result.lags) == 31


def draw_mouth_clip(wav: np.ndarray, fps: float, delay_frames: float = 0.0) -> np.ndarray:
    """A dark ellipse on skin whose opening follows the loudness of each frame's interval,
    ``delay_frames`` after the sound (so the expected offset is +delay_frames)."""
    frames = int(len(wav) / SR * fps)
    edges = np.round((np.arange(frames + 1) - delay_frames) * SR / fps).astype(int).clip(0, len(wav))
    rms = np.array([np.sqrt(np.mean(np.square(wav[a:b], dtype=np.float64))) if b > a else 0.0
                    for a, b in zip(edges[:-1], edges[1:])])
    opening = np.clip(rms / (np.percentile(rms, 95) + 1e-9), 0, 1)
    yy, xx = np.mgrid[0:48, 0:64]
    clip = np.empty((frames, 48, 64, 3), np.uint8)
    for i, o in enumerate(opening):
        inside = ((xx - 32) / 22.0) ** 2 + ((yy - 24) / (1.5 + 16 * o)) ** 2 <= 1
        clip[i] = (220, 170, 140)
        clip[i][inside] = (90, 20, 30)
    return clip


@pytest.mark.parametrize("k", [-5, -2, 0, 3, 6])
def test_real_speech_driving_a_drawn_mouth_recovers_the_shift(k):
    wav = load_audio(real_file("speech_16k.wav"), SR)
    clip = draw_mouth_clip(wav, 25.0)
    result = estimate_sync(shift_audio(wav, k / 25), SR, clip, fps=25.0)
    assert not result.no_signal and abs(result.offset_frames - k) <= 1


def test_25_and_30_fps_give_the_same_offset_in_milliseconds(fixture_clip):
    _, wav = fixture_clip
    offsets = {}
    for fps in (25.0, 30.0):
        clip = draw_mouth_clip(wav, fps, delay_frames=0.12 * fps)  # the mouth 120 ms after its sound
        offsets[fps] = estimate_sync(wav, SR, clip, fps=fps).offset_ms
    assert abs(offsets[25.0] - 120) <= 1000 / 25 and abs(offsets[30.0] - 120) <= 1000 / 30
    assert abs(offsets[25.0] - offsets[30.0]) <= 1000 / 25


def test_silence_gives_no_signal(fixture_clip):
    mouth, wav = fixture_clip
    result = estimate_sync(np.zeros_like(wav), SR, mouth, fps=25.0)
    assert result.no_signal and result.offset_frames is None and result.confidence == 0.0
    assert "silent" in result.reason


def test_still_mouth_gives_no_signal(fixture_clip):
    mouth, wav = fixture_clip
    still = np.repeat(mouth[:1], len(mouth), axis=0)
    result = estimate_sync(wav, SR, still, fps=25.0)
    assert result.no_signal and result.confidence == 0.0 and "does not change" in result.reason


def test_too_few_frames_give_no_signal_with_a_reason(fixture_clip):
    mouth, wav = fixture_clip
    result = estimate_sync(wav, SR, mouth[:20], fps=25.0)  # lags of +/-15 need 33 frames
    assert result.no_signal and not result.reliable and "too few" in result.reason


def test_a_peak_at_the_edge_of_the_search_range_is_unreliable():
    wav = load_audio(real_file("speech_16k.wav"), SR)
    clip = draw_mouth_clip(wav, 25.0, delay_frames=6)  # the true lag, +6, lies beyond +/-3
    result = estimate_sync(wav, SR, clip, fps=25.0, max_offset=3)
    assert result.offset_frames == 3 and not result.reliable and "edge" in result.reason
    assert estimate_sync(wav, SR, clip, fps=25.0, max_offset=8).reliable  # searched far enough, it is found


def test_audio_much_shorter_than_the_video_is_not_a_confident_answer(fixture_clip):
    mouth, wav = fixture_clip
    tiny = estimate_sync(wav[: SR // 10], SR, mouth, fps=25.0)  # 0.1 s of audio against the whole clip
    assert tiny.no_signal and not tiny.reliable and tiny.offset_frames is None and "covers only" in tiny.reason
    half = estimate_sync(wav[: len(wav) // 2], SR, mouth, fps=25.0)
    assert not half.reliable and "covers only" in half.reason


def test_every_unreliable_result_says_why():
    with pytest.raises(ValueError, match="reason"):
        SyncResult(1, 40.0, 1.0, 25.0, False, "", reliable=False)
    assert "reliable" in SyncResult(1, 40.0, 9.0, 25.0, False, "", reliable=True).to_dict()


def test_lag2_model_is_two_frames_late_and_reference_in_step(demo_run):
    import json

    runs = {e["model"]: e for e in json.loads((demo_run / "run.json").read_text())["runs"]}
    assert runs["lag2"]["sync"]["offset_frames"] == 2 and runs["lag2"]["sync"]["offset_ms"] == 80.0
    assert runs["reference"]["sync"]["offset_frames"] == 0
    assert runs["lag2"]["ground_truth_sync"]["offset_frames"] == 0  # the source itself is in sync
    assert runs["lag2"]["summary"]["sync_offset_vs_ground_truth_frames"] == 2


def test_the_video_to_video_lag_reads_lag2_late_and_reference_in_step(demo_run):
    """The output's mouth motion against the ground truth's, no audio: lag2 shows each mouth two frames late."""
    import json

    runs = {e["model"]: e for e in json.loads((demo_run / "run.json").read_text())["runs"]}
    for model, lag in (("lag2", 2), ("reference", 0), ("copycat", 0)):
        video_lag = runs[model]["video_lag"]
        assert video_lag["offset_frames"] == lag and video_lag["reliable"], (model, video_lag)
        assert runs[model]["summary"]["video_lag_frames"] == lag and runs[model]["summary"]["video_lag_reliable"] == 1


# The drawn mouth in the demo's full frames: centred near (320, 297), up to 24 px high either side, swaying
# +/-10 px in x and +/-5 px in y. (A box starting at y 300 cuts it in half and reads unreliable.)
MOUTH_ROI = "240,260,160,80"


def test_sync_command_reads_the_videos_own_audio(capsys, demo_run):
    import json

    from evalkit.cli import main

    mp4 = demo_run / "lag2__cpu__talking_head" / "output.mp4"
    assert main(["metrics", "sync", str(mp4), "--roi", MOUTH_ROI, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["offset_frames"] == 2 and result["fps"] == 25.0 and result["no_signal"] is False
    assert {"offset_ms", "confidence", "reliable", "reason"} <= set(result) and result["note"] == ""


def test_sync_command_shows_reliability_and_notes_a_missing_roi(capsys, demo_run):
    from evalkit.cli import main

    mp4 = demo_run / "lag2__cpu__talking_head" / "output.mp4"
    assert main(["metrics", "sync", str(mp4), "--roi", MOUTH_ROI]) == 0
    out = capsys.readouterr().out
    assert "offset +2 frames" in out and "(reliable)" in out and "note:" not in out
    assert main(["metrics", "sync", str(mp4)]) == 0
    assert "note: no --roi" in capsys.readouterr().out


@pytest.mark.parametrize("max_offset", ["0", "-3"])
def test_sync_command_rejects_a_max_offset_below_one(capsys, demo_run, max_offset):
    from evalkit.cli import main

    mp4 = demo_run / "lag2__cpu__talking_head" / "output.mp4"
    assert main(["metrics", "sync", str(mp4), "--max-offset", max_offset]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-offset" in err and len(err.splitlines()) == 1


def test_a_long_track_spilled_to_disk_gives_the_same_signal(fixture_clip, monkeypatch):
    """A MouthTrack keeps only its newest chunks in memory; the spilled ones read back byte for byte."""
    import evalkit.metrics.sync as sync

    mouth, _ = fixture_clip
    thumbnails = sync.mouth_thumbnails(mouth)
    in_memory = sync.MouthTrack.of(thumbnails)
    monkeypatch.setattr(sync, "TRACK_IN_MEMORY", 0)  # every full chunk to the temporary file
    spilled = sync.MouthTrack.of(thumbnails)
    assert spilled._spill is not None and sum(c is None for c in spilled._chunks) == len(thumbnails) // 256
    assert np.array_equal(spilled.stabilised(), in_memory.stabilised())
    assert np.array_equal(spilled.opening(25.0)[0], in_memory.opening(25.0)[0])


def test_the_audio_envelope_in_blocks_equals_one_pass():
    """audio_envelope filters long audio in blocks with context; the result is one zero-phase pass's."""
    import scipy.signal

    from evalkit.metrics.sync import ENVELOPE_BLOCK, SPEECH_BAND, audio_envelope

    rng = np.random.default_rng(3)
    wav = (rng.standard_normal(int(SR * ENVELOPE_BLOCK * 3.3)) * 0.1).astype(np.float32)  # four blocks
    frames = len(wav) // 640
    sos = scipy.signal.butter(4, SPEECH_BAND, btype="bandpass", fs=SR, output="sos")
    band = scipy.signal.sosfiltfilt(sos, wav.astype(np.float64))
    whole = np.sqrt(np.square(band[: frames * 640]).reshape(frames, 640).mean(axis=1))
    # 1e-9 of the envelope's scale: the filter's response to a block's edge dies away within the 0.5 s context
    assert np.abs(audio_envelope(wav, SR, 25.0, frames) - whole).max() < 1e-9 * whole.max()



def test_the_channel_mean_is_numpys_bit_for_bit():
    """channel_mean (the thumbnails' grey) equals np.mean(axis=2, dtype=float32) for every sum of three uint8, in
    any channel order, and on a strided view of random pixels."""
    from evalkit.metrics.sync import channel_mean

    s = np.arange(766)
    every_sum = np.stack([np.minimum(s, 255), np.clip(s - 255, 0, 255), np.clip(s - 510, 0, 255)], -1)
    for frame in (every_sum.astype(np.uint8)[None], every_sum[:, ::-1].astype(np.uint8)[None],
                  np.random.default_rng(5).integers(0, 256, (108, 250, 3), dtype=np.uint8)[2:, 3:]):
        got = channel_mean(frame, np.empty(frame.shape[:2], np.float32))
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), np.mean(frame, axis=2, dtype=np.float32).view(np.uint32))
    assert channel_mean(every_sum.astype(np.uint8)[None], np.empty((1, 766), np.float32))[0, 765] == np.float32(255)


def test_mouth_thumbnails_are_the_channel_mean_shrunk():
    """A thumbnail: the channels' mean, area-resized to THUMBNAIL_SHAPE, rounded (np.mean's grey, as before)."""
    import cv2

    from evalkit.metrics.sync import THUMBNAIL_SHAPE, mouth_thumbnails

    frames = np.random.default_rng(6).integers(0, 256, (3, 108, 250, 3), dtype=np.uint8)[:, 2:, 3:]
    got = mouth_thumbnails(frames)  # a strided view, as the pipeline passes its mouth box
    assert got.dtype == np.uint8 and got.shape == (3, *THUMBNAIL_SHAPE)
    for frame, thumbnail in zip(frames, got):
        grey = np.mean(frame, axis=2, dtype=np.float32)
        expected = np.rint(cv2.resize(grey, THUMBNAIL_SHAPE[::-1], interpolation=cv2.INTER_AREA)).astype(np.uint8)
        assert np.array_equal(thumbnail, expected)


def test_detrended_thumbnails_kept_between_passes_give_the_same_numbers(fixture_clip, monkeypatch):
    """A track keeps its detrended thumbnails for the next pass (sync, then the video lag): the projections
    and the estimate equal those of a track that recomputes them every pass, in chunks with margins."""
    import evalkit.metrics.sync as sync

    mouth, wav = fixture_clip
    thumbnails = sync.mouth_thumbnails(mouth)
    monkeypatch.setattr(sync, "TRACK_CHUNK", 64)  # several chunks, each with its margins
    kept, fresh = sync.MouthTrack.of(thumbnails), sync.MouthTrack.of(thumbnails)
    monkeypatch.setattr(sync, "DETRENDED_KEPT", 0)
    expected = [fresh.project(25.0, *fresh.components(25.0, 8)[:2]), fresh.opening(25.0)[0]]
    monkeypatch.setattr(sync, "DETRENDED_KEPT", 10_000)
    first = kept.project(25.0, *kept.components(25.0, 8)[:2])
    assert kept._kept is not None and len(kept._kept[1]) == -(-kept.frames // 64)
    assert np.array_equal(first, expected[0])
    assert np.array_equal(kept.opening(25.0)[0], expected[1])  # from the kept chunks
    assert np.array_equal(kept.project(25.0, *kept.components(25.0, 8)[:2]), expected[0])
    kept.forget_detrended()
    assert kept._kept is None
    kept.add(thumbnails[0])  # a new frame drops what was kept
    kept.project(25.0, *kept.components(25.0, 1)[:2])
    assert kept._kept[0] == (25.0, kept.frames)
    kept.add(thumbnails[1])
    assert kept._kept is None


def test_a_remembered_audio_envelope_is_the_computed_one_and_a_copy():
    """audio_envelope remembers its last answers by the audio's digest: the same numbers as computing it, a
    copy each time (a caller's change stays its own), and other audio or arguments computed afresh."""
    import evalkit.metrics.sync as sync

    rng = np.random.default_rng(12)
    wav = (rng.standard_normal(SR * 3) * 0.1).astype(np.float32)
    sync._ENVELOPES.clear()
    first = sync.audio_envelope(wav, SR, 25.0, 75)
    assert np.array_equal(first, sync._audio_envelope(wav, SR, 25.0, 75)) and len(sync._ENVELOPES) == 1
    first[:] = -1.0
    again = sync.audio_envelope(wav.copy(), SR, 25.0, 75)  # another array, the same samples: remembered
    assert len(sync._ENVELOPES) == 1 and np.array_equal(again, sync._audio_envelope(wav, SR, 25.0, 75))
    other = wav.copy()
    other[100] += 0.5
    assert not np.array_equal(sync.audio_envelope(other, SR, 25.0, 75), again)
    assert len(sync.audio_envelope(wav, SR, 25.0, 70)) == 70 and len(sync._ENVELOPES) == 3
