"""Stage 1: load the speech as mono float32 at the contract's sample rate."""

from __future__ import annotations

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
    try:
        wav, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except Exception as exc:  # librosa/soundfile raise many types for bad files
        raise UserError(f"cannot read audio {path}: {exc} (expected a WAV/FLAC/OGG file)") from exc
    if wav.size == 0:
        raise UserError(f"audio {path} holds no samples")
    return np.ascontiguousarray(wav, dtype=np.float32)
