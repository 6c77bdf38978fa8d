"""The built-in sync estimator on a real face with real head motion (../shared/data/real/motion).

The truth (motion/README.md): the true mouth opening against this speech reads -2 (the speaker's
mouth opens two frames before the sound), and speech shifted by k frames reads -2 + k.
tests/benchmarks/sync_calibration.py prints the full figures these tests spot-check.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.pipeline.audio import load_audio
from evalkit.metrics.sync import (RELIABLE_CONFIDENCE, audio_envelope, estimate_sync, mouth_opening,
                                  mouth_thumbnails, sync_of_signals)
from tests.conftest import decode, real_file

SR, FPS, HOP = 16000, 25.0, 640  # 640 samples a frame at 16 kHz and 25 fps
MOUTH_BOX = np.s_[:, 86:192, 22:269]  # the contract's mouth_box in these 320x320 frames (--roi 22,86,247,106)
NATURAL_LEAD = -2  # frames: this speaker's mouth opens before the sound (the README's truth)


@pytest.fixture(scope="module")
def motion():
    """Mouth thumbnails of the H.264 clip, their mouth signal, the true opening and the speech; decoded once."""
    thumbs = mouth_thumbnails(decode(real_file("motion/face_f000-261.mp4"))[MOUTH_BOX])
    signal, _ = mouth_opening(thumbs, FPS)
    truth = np.load(real_file("motion/mouth_opening_f000-261.npy")).astype(np.float64)
    wav = load_audio(real_file("motion/speech_f000-261.wav"), SR)
    return thumbs, signal, truth, wav


def shift_audio(wav: np.ndarray, k: int) -> np.ndarray:
    """The README's shift: positive k drops the first k frames of audio and pads the end with -60 dBFS noise."""
    pad = (np.random.default_rng(k + 100).standard_normal(abs(k) * HOP) * 1e-3).astype(np.float32)
    return np.concatenate([wav[k * HOP:], pad]) if k >= 0 else np.concatenate([pad, wav[: len(wav) + k * HOP]])


def sync_with(signal: np.ndarray, audio: np.ndarray):
    """estimate_sync's verdict for a precomputed mouth signal (the decode and stabilisation done once)."""
    return sync_of_signals(audio_envelope(audio, SR, FPS, len(signal)), signal, FPS, 15, len(signal))


def test_mouth_signal_follows_the_lips_not_the_head(motion):
    _, signal, truth, _ = motion
    # 0.8: the goal set for this estimator; it reaches 0.82 (the unstabilised PCA read 0.10)
    assert np.corrcoef(signal, truth)[0, 1] >= 0.8


def test_true_speech_reads_the_natural_lead_and_is_reliable(motion):
    thumbs, _, _, wav = motion
    result = estimate_sync(wav, SR, thumbs, FPS)
    assert result.offset_frames == NATURAL_LEAD and result.reliable and result.reason == ""
    assert result.confidence >= RELIABLE_CONFIDENCE


@pytest.mark.parametrize("k", range(-6, 7))
def test_speech_shifted_by_k_frames_reads_lead_plus_k(motion, k):
    _, signal, _, wav = motion
    result = sync_with(signal, shift_audio(wav, k))
    assert abs(result.offset_frames - (NATURAL_LEAD + k)) <= 1 and result.reliable, result.reason


def test_reversed_speech_is_less_confident_and_unreliable(motion):
    thumbs, _, _, wav = motion
    true = estimate_sync(wav, SR, thumbs, FPS)
    backwards = estimate_sync(wav[::-1].copy(), SR, thumbs, FPS)
    assert backwards.confidence < true.confidence and not backwards.reliable and backwards.reason


@pytest.mark.parametrize("start_seconds", [11.0, 13.5, 16.0, 18.5])
def test_unrelated_speech_is_less_confident_and_unreliable(motion, start_seconds):
    _, signal, _, wav = motion
    full = load_audio(real_file("speech_16k.wav"), SR)  # its first 10.48 s are the clip's own speech
    other = np.roll(full, -int(start_seconds * SR))[: len(wav)]
    result = sync_with(signal, other)
    assert result.confidence < sync_with(signal, wav).confidence and not result.reliable and result.reason


def test_a_three_second_cut_is_unreliable_rather_than_wrong(motion):
    thumbs, _, _, wav = motion
    cut = estimate_sync(wav[: 75 * HOP], SR, thumbs[:75], FPS)  # 3 s: 75 frames
    assert not cut.reliable and cut.reason
