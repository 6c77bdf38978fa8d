"""The mel front end against an independent computation from librosa primitives (CONTRACT.md, Audio), and its
STFT and Slaney filters equal to librosa's own bit for bit (evalkit computes them without importing librosa)."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import scipy.signal

from evalkit.pipeline.audio import load_audio
from evalkit.config.contract import Contract
from evalkit.pipeline import mel as mel_module
from evalkit.pipeline.mel import (mel_spectrogram, mel_windows_for_frames, slaney_mel_filters, stft_magnitude,
                                  video_frame_count)
from tests.conftest import real_file

# float32 output of a float64 computation: 1e-4 is far below one step of any
# plausible mistake (a wrong ref level shifts values by 0.16, a wrong fmin by
# more than 0.01 in the low bands).
TOL = 1e-4


def reference_mel(wav: np.ndarray) -> np.ndarray:
    """CONTRACT.md's audio front end written out with librosa primitives and the formulas."""
    # zi=0: the reference filters with scipy's lfilter([1, -0.97], [1]), which starts from rest
    # (librosa's default would infer a start state from the first two samples).
    y = librosa.effects.preemphasis(wav.astype(np.float64), coef=0.97, zi=0.0)
    magnitude = np.abs(librosa.stft(y, n_fft=800, hop_length=200, win_length=800, center=True))
    mel = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ magnitude
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * ((db + 100) / 100) - 4, -4, 4)


def check_against_reference(wav: np.ndarray) -> None:
    got = mel_spectrogram(wav, Contract())
    want = reference_mel(wav)
    assert got.shape == want.shape == (80, 1 + len(wav) // 200)
    assert np.abs(got - want).max() < TOL
    assert got.min() >= -4 and got.max() <= 4


def test_mel_matches_librosa_primitives_on_fixture_audio(fixtures_dir):
    check_against_reference(load_audio(fixtures_dir / "clip" / "speech.wav", 16000))


def test_mel_matches_librosa_primitives_on_real_speech():
    wav = load_audio(real_file("speech_16k.wav"), 16000)
    assert abs(len(wav) / 16000 - 20.9) < 0.1
    check_against_reference(wav)


@pytest.mark.parametrize("samples", [3000, 16000, 16000 * 3 + 123, 204800])
def test_frame_count_and_window_starts_follow_the_contract(samples):
    mel = np.tile(np.arange(1 + samples // 200, dtype=np.float32), (80, 1))  # column j holds j
    windows = mel_windows_for_frames(mel, Contract())
    mel_frames = mel.shape[1]
    assert len(windows) == video_frame_count(mel_frames, Contract()) == int((mel_frames - 16) / 80 * 25) + 2
    for i, window in enumerate(windows):
        start = min(int(80 * i / 25), mel_frames - 16)  # moved back to end at the last mel frame
        assert window.shape == (80, 16)
        assert (window[0] == np.arange(start, start + 16)).all()
    assert windows[-1][0, -1] == mel_frames - 1  # the last window ends at the last mel frame


def test_other_mel_settings_come_from_the_contract():
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    c = Contract(hop_length=160, n_mels=40)
    assert mel_spectrogram(wav, c).shape == (40, 1 + 16000 // 160)


# --- bit for bit with librosa: evalkit's numpy STFT and Slaney filters are librosa's arithmetic -------------------

FILTER_SETTINGS = [  # sr, n_fft, n_mels, fmin, fmax
    (16000, 800, 80, 55.0, 7600.0),  # the contract's defaults
    (16000, 800, 80, 55, 7600),  # the same as integers (a suite may write them so)
    (22050, 2048, 128, 0.0, 11025.0),  # librosa's own defaults
    (16000, 512, 40, 0.0, 8000.0),  # fmax at Nyquist
    (44100, 1024, 80, 20.0, 16000.0),
    (16000, 800, 20, 1500.0, 7000.0),  # every band edge in the logarithmic region
    (16000, 400, 80, 0.0, 500.0),  # every band edge in the linear region
]


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", FILTER_SETTINGS)
def test_slaney_filters_equal_librosa_bit_for_bit(sr, n_fft, n_mels, fmin, fmax):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's "empty filters" warning for the narrow linear-region bank
        want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    got = slaney_mel_filters(sr, n_fft, n_mels, fmin, fmax)
    assert got.dtype == want.dtype == np.float32 and got.shape == (n_mels, 1 + n_fft // 2)
    assert np.array_equal(got, want)


def preemphasised(wav: np.ndarray) -> np.ndarray:
    return scipy.signal.lfilter([1.0, -0.97], [1.0], wav.astype(np.float64))


@pytest.fixture(params=["fixture", "real"])
def speech(request, fixtures_dir):
    path = fixtures_dir / "clip" / "speech.wav" if request.param == "fixture" else real_file("speech_16k.wav")
    return load_audio(path, 16000)


@pytest.mark.parametrize("n_fft, hop, win", [(800, 200, 800), (800, 160, 600), (512, 128, 512)])
def test_stft_magnitude_equals_librosa_bit_for_bit(speech, n_fft, hop, win):
    y = preemphasised(speech)
    got = stft_magnitude(y, n_fft, hop, win)
    want = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=False))
    assert got.shape == want.shape == (1 + n_fft // 2, 1 + (len(y) - n_fft) // hop)
    assert np.array_equal(got, want)
    # librosa's centred STFT (zero padding, its head and tail frames computed apart) is the padded signal's
    centred = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True, pad_mode="constant"))
    assert np.array_equal(stft_magnitude(np.pad(y, n_fft // 2), n_fft, hop, win), centred)


@pytest.mark.parametrize("contract", [Contract(), Contract(hop_length=160, n_mels=40, win_length=640, fmin=0.0)],
                         ids=["defaults", "other"])
def test_mel_features_equal_those_from_librosa_bit_for_bit(speech, contract, monkeypatch):
    """mel_spectrogram as it is, against the same function computing its STFT and filters with librosa."""
    got = mel_spectrogram(speech, contract)
    monkeypatch.setattr(mel_module, "stft_magnitude", lambda y, n_fft, hop, win: np.abs(librosa.stft(
        y=y, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=False)))
    monkeypatch.setattr(mel_module, "slaney_mel_filters", lambda sr, n_fft, n_mels, fmin, fmax: librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))
    want = mel_spectrogram(speech, contract)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
