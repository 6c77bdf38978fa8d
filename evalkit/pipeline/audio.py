"""Stage 1: load the speech as mono float32 at the contract's sample rate.

What libsndfile reads (WAV, FLAC, OGG, ...) is read with soundfile and resampled with soxr, exactly as
``librosa.load(path, sr=sample_rate, mono=True)`` does it (the same calls, the same samples bit for bit:
tests/pipeline/test_audio.py), without importing librosa, whose import costs about 2 CPU-s a process. Other
formats go through librosa.load itself (audioread), as before.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from evalkit.errors import UserError


def _resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=, target_sr=)`` of 1-D float32 ``y``: its default res_type 'soxr_hq'
    (``soxr.resample(y, orig_sr, target_sr, quality='soxr_hq')``), then ``fix_length`` to
    ceil(len(y) * target_sr / orig_sr) samples (trimmed, or zero-padded at the end)."""
    import soxr

    if orig_sr == target_sr:
        return y
    n_samples = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    y_hat = np.asarray(soxr.resample(y, orig_sr, target_sr, quality="soxr_hq"))
    if y_hat.shape[-1] > n_samples:
        y_hat = y_hat[:n_samples]
    elif y_hat.shape[-1] < n_samples:
        y_hat = np.pad(y_hat, (0, n_samples - y_hat.shape[-1]), mode="constant")
    return np.asarray(y_hat, dtype=y.dtype)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int] | None:
    """The samples, shaped (channels, n) or (n,), float32, and the rate, read as librosa's ``__soundfile_load``
    reads them; None where libsndfile cannot open the file (librosa.load then tries audioread)."""
    import soundfile

    try:
        handle = soundfile.SoundFile(str(path))
    except Exception:  # not a format libsndfile reads
        return None
    with handle:
        if handle.frames == 0:
            raise UserError(f"audio {path}: holds no samples (a header without sound); expected speech at least "
                            "one mel window long: export it again")
        try:
            y = handle.read(frames=-1, dtype=np.float32, always_2d=False).T
        except Exception:  # a damaged file libsndfile opened: librosa.load says what is wrong
            return None
        return y, handle.samplerate


def _librosa_load(path: Path, sample_rate: int) -> np.ndarray:
    """librosa.load, for formats libsndfile does not read (its audioread fallback), its errors as one line."""
    import librosa  # imported here: librosa's import costs two CPU-seconds

    try:
        with warnings.catch_warnings():
            # librosa warns (PySoundFile failed, audioread deprecated) before raising: the error says it all.
            warnings.simplefilter("ignore")
            wav, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except Exception as exc:  # librosa/soundfile/audioread raise many types for bad files
        why = " ".join(str(exc).split()) or "not a sound file (no decoder recognises its format)"
        raise UserError(f"cannot read audio {path}: {why} (expected a WAV/FLAC/OGG file)") from None
    return wav


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` Hz (resampled if needed).

    Any rate, any channel count and any format libsndfile reads is accepted:
    the reference pipeline resamples too, so another rate is not an error.
    The samples are librosa.load's: the channels' mean (librosa.to_mono), soxr's 'HQ' resampling.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file not found: {path}")
    read = _read_soundfile(path)
    if read is None:
        wav, rate = _librosa_load(path, sample_rate), sample_rate
    else:
        wav, rate = read
        if wav.ndim > 1:
            wav = np.mean(wav, axis=tuple(range(wav.ndim - 1)))  # librosa.to_mono
    if wav.size == 0:
        raise UserError(f"audio {path} holds no samples")
    if not np.isfinite(wav).all():  # checked before soxr sees it
        raise UserError(f"audio {path}: holds NaN or infinite samples (a damaged float WAV?); export it again")
    return np.ascontiguousarray(_resample(wav, rate, sample_rate), dtype=np.float32)
