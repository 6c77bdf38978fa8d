"""Stage 2: the normalised mel spectrogram and the mel window of each video frame.

Exactly the reference ("Wav2Lip-style") audio front end, every number taken
from the contract: pre-emphasis, centred STFT magnitude, Slaney mel filters,
amplitude to dB minus ``ref_level_db``, and a symmetric normalisation into
[-max_abs_value, max_abs_value].

The STFT and the Slaney mel filters are librosa's arithmetic written out in numpy (``stft_magnitude``,
``slaney_mel_filters``): the same window, the same float64 frames and FFT, the same filter formulas, so the
features equal librosa's bit for bit (tests/pipeline/test_mel.py compares them with librosa) without importing
librosa, whose import costs about 2 CPU-s a process.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from evalkit.config.contract import Contract
from evalkit.errors import UserError


def mel_frame_count(samples: int, contract: Contract) -> int:
    """Mel frames of ``samples`` samples of audio: the centred STFT's 1 + (samples + 2 (n_fft // 2) - n_fft) // hop."""
    return 1 + (samples + 2 * (contract.n_fft // 2) - contract.n_fft) // contract.hop_length


# The Slaney mel scale as librosa computes it (htk=False): linear below 1 kHz, logarithmic above
_F_MIN, _F_SP = 0.0, 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = (_MIN_LOG_HZ - _F_MIN) / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(frequencies: float) -> np.ndarray:
    """librosa.hz_to_mel(frequencies, htk=False) of one frequency."""
    frequencies = np.asanyarray(frequencies)
    mels = (frequencies - _F_MIN) / _F_SP
    if frequencies >= _MIN_LOG_HZ:
        mels = _MIN_LOG_MEL + np.log(frequencies / _MIN_LOG_HZ) / _LOGSTEP
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """librosa.mel_to_hz(mels, htk=False) of a vector of mels."""
    freqs = _F_MIN + _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def slaney_mel_filters(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The mel filter bank [n_mels, 1 + n_fft // 2], float32: ``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=,
    fmax=)`` with its defaults (htk=False, norm='slaney'), the same operations in the same order.

    Triangles between consecutive band edges equally spaced on the Slaney mel scale (linear below 1 kHz,
    logarithmic above), each scaled by 2 / (its width in Hz) so that every band holds about the same energy.
    """
    n_mels = int(n_mels)
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


def stft_magnitude(y: np.ndarray, n_fft: int, hop_length: int, win_length: int) -> np.ndarray:
    """|STFT| of float64 ``y`` without centring, [1 + n_fft // 2, 1 + (len(y) - n_fft) // hop_length], float64:
    ``np.abs(librosa.stft(y, n_fft=, hop_length=, win_length=, window='hann', center=False))``.

    librosa's arithmetic: scipy's periodic Hann window of ``win_length`` zero-padded to ``n_fft`` in the middle,
    times each frame of ``y`` (float64), numpy's rfft of each column, complex128, its modulus.
    """
    y = np.asarray(y, np.float64)
    window = scipy.signal.get_window("hann", win_length, fftbins=True)
    lpad = (n_fft - win_length) // 2
    window = np.pad(window, (lpad, n_fft - win_length - lpad), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length].T  # [n_fft, frames], a view
    return np.abs(np.fft.rfft(window[:, np.newaxis] * frames, axis=0))


MEL_CHUNK = 1000  # mel frames computed together (10 s at the default hop): memory stays a few MB for any length


def mel_spectrogram(wav: np.ndarray, contract: Contract) -> np.ndarray:
    """Normalised mel spectrogram, shape [n_mels, mel_frames], float32.

    Formula, per time-frequency cell::

        S   = mel_basis @ |stft(preemphasis(wav))|
        db  = 20 * log10(max(min_amplitude, S)) - ref_level_db
        out = clip(2 * A * (db - min_level_db) / -min_level_db - A, -A, A)   (A = max_abs_value)

    The STFT is centred (librosa's ``center=True`` with zero padding): frame t covers samples
    [t * hop - n_fft // 2, t * hop + n_fft // 2). It is computed ``MEL_CHUNK`` frames at a time, each chunk
    from exactly the samples its frames cover, so the result equals one STFT of the whole audio while no
    float64 copy or spectrum of the whole audio is ever held (600 s of audio needed 550 MB that way).
    """
    c = contract
    wav = np.asarray(wav, np.float32)
    half = c.n_fft // 2
    frames = mel_frame_count(len(wav), c)
    basis = slaney_mel_filters(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)
    out = np.empty((c.n_mels, frames), np.float32)
    a = c.max_abs_value
    for first in range(0, frames, MEL_CHUNK):
        last = min(frames, first + MEL_CHUNK)
        lo, hi = first * c.hop_length - half, (last - 1) * c.hop_length - half + c.n_fft
        # pre-emphasis y[n] = x[n] - k x[n - 1] from rest (scipy's lfilter([1, -k], [1]), x[-1] = 0), over
        # [lo, hi) with zeros outside the audio (the centred STFT's padding)
        x = np.zeros(hi - lo + 1)
        start, stop = max(lo - 1, 0), min(hi, len(wav))
        if stop > start:
            x[start - (lo - 1) : stop - (lo - 1)] = wav[start:stop]
        segment = scipy.signal.lfilter([1.0, -c.preemphasis], [1.0], x)[1:]
        segment[: max(0, -lo)] = 0.0  # the padding before the audio
        segment[max(0, len(wav) - lo):] = 0.0  # and after it
        spectrum = stft_magnitude(segment, c.n_fft, c.hop_length, c.win_length)
        db = 20.0 * np.log10(np.maximum(c.min_amplitude, basis @ spectrum)) - c.ref_level_db
        out[:, first:last] = np.clip(2 * a * ((db - c.min_level_db) / -c.min_level_db) - a, -a, a)
    return out


def video_frame_count(mel_frames: int, contract: Contract) -> int:
    """Number of video frames the audio drives: int((mel_frames - window) / mel_fps * fps) + 2."""
    return int((mel_frames - contract.mel_window) / contract.mel_fps * contract.fps) + 2


def mel_window_start(frame: int, mel_frames: int, contract: Contract) -> int:
    """First mel frame of video frame ``frame``'s window: int(mel_fps * frame / fps),
    moved back so that the window ends at the last mel frame when it would run past it."""
    start = int(contract.mel_fps * frame / contract.fps)
    return min(start, mel_frames - contract.mel_window)


class MelWindows:
    """The mel window of every video frame as views into the mel spectrogram (no copy): ``len``, indexing
    and iteration give [n_mels, mel_window] arrays, as ``mel_windows_for_frames`` stacks them."""

    def __init__(self, mel: np.ndarray, contract: Contract):
        mel_frames = mel.shape[1]
        if mel_frames < contract.mel_window:
            seconds = (contract.mel_window - 1) * contract.hop_length / contract.sample_rate
            raise UserError(
                f"the audio gives {mel_frames} mel frames, fewer than one window of {contract.mel_window} "
                f"(it must be at least {seconds:.3f} s long)"
            )
        self.mel, self.width = mel, contract.mel_window
        self.starts = [mel_window_start(i, mel_frames, contract) for i in range(video_frame_count(mel_frames,
                                                                                                 contract))]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> np.ndarray:
        start = self.starts[i]
        return self.mel[:, start : start + self.width]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def mel_windows_for_frames(mel: np.ndarray, contract: Contract) -> np.ndarray:
    """All mel windows, shape [frames, n_mels, mel_window] (views are copied once)."""
    return np.stack(list(MelWindows(mel, contract))).astype(np.float32, copy=False)
