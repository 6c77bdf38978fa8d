"""Stage 2: the normalised mel spectrogram and the mel window of each video frame.

Exactly the reference ("Wav2Lip-style") audio front end, every number taken
from the contract: pre-emphasis, centred STFT magnitude, Slaney mel filters,
amplitude to dB minus ``ref_level_db``, and a symmetric normalisation into
[-max_abs_value, max_abs_value].
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from evalkit.config.contract import Contract
from evalkit.errors import UserError


def mel_spectrogram(wav: np.ndarray, contract: Contract) -> np.ndarray:
    """Normalised mel spectrogram, shape [n_mels, mel_frames], float32.

    Formula, per time-frequency cell::

        S   = mel_basis @ |stft(preemphasis(wav))|
        db  = 20 * log10(max(min_amplitude, S)) - ref_level_db
        out = clip(2 * A * (db - min_level_db) / -min_level_db - A, -A, A)   (A = max_abs_value)
    """
    import librosa

    c = contract
    emphasised = scipy.signal.lfilter([1.0, -c.preemphasis], [1.0], wav)
    spectrum = np.abs(
        librosa.stft(y=emphasised, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window="hann")
    )
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    mel = basis @ spectrum
    db = 20.0 * np.log10(np.maximum(c.min_amplitude, mel)) - c.ref_level_db
    a = c.max_abs_value
    normalised = np.clip(2 * a * ((db - c.min_level_db) / -c.min_level_db) - a, -a, a)
    return normalised.astype(np.float32)


def video_frame_count(mel_frames: int, contract: Contract) -> int:
    """Number of video frames the audio drives: int((mel_frames - window) / mel_fps * fps) + 2."""
    return int((mel_frames - contract.mel_window) / contract.mel_fps * contract.fps) + 2


def mel_window_start(frame: int, mel_frames: int, contract: Contract) -> int:
    """First mel frame of video frame ``frame``'s window: int(mel_fps * frame / fps),
    moved back so that the window ends at the last mel frame when it would run past it."""
    start = int(contract.mel_fps * frame / contract.fps)
    return min(start, mel_frames - contract.mel_window)


def mel_windows_for_frames(mel: np.ndarray, contract: Contract) -> np.ndarray:
    """All mel windows, shape [frames, n_mels, mel_window] (views are copied once)."""
    mel_frames = mel.shape[1]
    if mel_frames < contract.mel_window:
        seconds = (contract.mel_window - 1) * contract.hop_length / contract.sample_rate
        raise UserError(
            f"the audio gives {mel_frames} mel frames, fewer than one window of {contract.mel_window} "
            f"(it must be at least {seconds:.3f} s long)"
        )
    n = video_frame_count(mel_frames, contract)
    starts = [mel_window_start(i, mel_frames, contract) for i in range(n)]
    return np.stack([mel[:, s : s + contract.mel_window] for s in starts]).astype(np.float32, copy=False)
