"""load_audio against librosa.load, the reference's loader, bit for bit (evalkit reads with soundfile and resamples
with soxr as librosa does, without importing librosa), and a run's audio front end without librosa imported."""

from __future__ import annotations

import subprocess
import sys
import warnings

import librosa
import numpy as np
import pytest
import soundfile

from evalkit.errors import UserError
from evalkit.pipeline.audio import load_audio
from tests.conftest import REPO, real_file


def librosa_load(path, sr=16000) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return librosa.load(str(path), sr=sr, mono=True)[0]


def assert_same_as_librosa(path, sr=16000) -> np.ndarray:
    got, want = load_audio(path, sr), librosa_load(path, sr)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    return got


@pytest.fixture(scope="module")
def speech(fixtures_dir) -> tuple[np.ndarray, int]:
    return soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")


def test_fixture_and_real_speech_at_16k_equal_librosa(fixtures_dir):
    assert_same_as_librosa(fixtures_dir / "clip" / "speech.wav")
    assert_same_as_librosa(real_file("speech_16k.wav"))


@pytest.mark.parametrize("rate", [44100, 22050, 48000, 8000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_other_rates_and_channels_equal_librosa(speech, tmp_path, rate, channels, subtype):
    wav, sr = speech
    other = librosa.resample(wav, orig_sr=sr, target_sr=rate)  # speech at that rate
    if channels == 2:  # a second channel that differs from the first: the mean is not one channel
        other = np.stack([other, 0.5 * np.roll(other, 37)], axis=1)
    path = tmp_path / "speech.wav"
    soundfile.write(path, other, rate, subtype=subtype)
    got = assert_same_as_librosa(path)
    assert abs(len(got) - len(wav)) <= 1  # the same speech, back at 16 kHz


def test_flac_at_another_rate_equals_librosa(speech, tmp_path):
    wav, sr = speech
    path = tmp_path / "speech.flac"
    soundfile.write(path, librosa.resample(wav, orig_sr=sr, target_sr=32000), 32000)
    assert_same_as_librosa(path)


def test_another_target_rate_equals_librosa(fixtures_dir):
    assert_same_as_librosa(fixtures_dir / "clip" / "speech.wav", sr=22050)


def test_non_finite_float_wav_is_one_clear_error(speech, tmp_path):
    wav = speech[0].copy()
    wav[100] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, wav, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match=r"nan\.wav: holds NaN or infinite samples"):
        load_audio(path, 16000)


def test_a_run_computes_its_mel_without_importing_librosa(fixtures_dir, speech, tmp_path):
    """evalkit.run and the audio front end on the fixture speech, and on a 44.1 kHz stereo copy (the resampling
    path), in a fresh interpreter: librosa is never imported (its import costs about 2 CPU-s)."""
    wav, sr = speech
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.stack([wav, wav[::-1]], axis=1), sr)
    code = (
        "import sys\n"
        "import evalkit.run\n"
        "from evalkit.config.contract import Contract\n"
        "from evalkit.pipeline.audio import load_audio\n"
        "from evalkit.pipeline.mel import MelWindows, mel_spectrogram\n"
        "for path in sys.argv[1:]:\n"
        "    mel = mel_spectrogram(load_audio(path, 16000), Contract())\n"
        "    assert mel.shape[0] == 80 and len(MelWindows(mel, Contract())) > 0\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('librosa', 'audioread')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(fixtures_dir / "clip" / "speech.wav"), str(stereo)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
