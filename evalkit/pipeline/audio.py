"""Stage 1: load the speech as mono float32 at the contract's sample rate."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from evalkit.errors import UserError


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` Hz (resampled if needed).

    Any rate, any channel count and any format libsndfile reads is accepted:
    the reference pipeline resamples too, so another rate is not an error.
    """
    import librosa  # imported here: librosa's import costs a second

    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file not found: {path}")
    import soundfile

    try:
        samples = soundfile.info(str(path)).frames
    except Exception:  # not a format libsndfile reads: librosa may still (through audioread)
        samples = None
    if samples == 0:
        raise UserError(f"audio {path}: holds no samples (a header without sound); expected speech at least one "
                        "mel window long: export it again")
    try:
        with warnings.catch_warnings():
            # librosa warns (PySoundFile failed, audioread deprecated) before raising: the error says it all.
            warnings.simplefilter("ignore")
            wav, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except Exception as exc:  # librosa/soundfile/audioread raise many types for bad files
        why = " ".join(str(exc).split()) or "not a sound file (no decoder recognises its format)"
        raise UserError(f"cannot read audio {path}: {why} (expected a WAV/FLAC/OGG file)") from None
    if wav.size == 0:
        raise UserError(f"audio {path} holds no samples")
    if not np.isfinite(wav).all():
        raise UserError(f"audio {path}: holds NaN or infinite samples (a damaged float WAV?); export it again")
    return np.ascontiguousarray(wav, dtype=np.float32)
