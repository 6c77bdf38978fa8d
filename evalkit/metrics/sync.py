"""Audio-visual sync without a neural network: the lag that best lines up loudness and mouth opening.

Sign convention, everywhere in evalkit: **a positive offset means the mouth
moves after the sound it belongs to (the video lags the audio)**. An offset
of +2 frames at 25 fps: the mouth shows at frame t + 2 what the audio says at
frame t (80 ms late).

Signals, one value per video frame:

- audio: log energy of the speech band (``SPEECH_BAND`` Hz, zero-phase
  band-pass, so filtering adds no delay) over each frame's own interval
  [i / fps, (i + 1) / fps);
- video: the mouth's opening, estimated from the mouth region's pixels as the
  first principal component of their grey levels over time, signed so that
  a darker mouth region (an open mouth shows its dark inside) is more open.

Both are standardised and compared by normalised cross-correlation (Pearson's
r over the frames the two overlap at that lag) for every lag in
[-max_offset, +max_offset]. The offset is the lag of the highest r. The
confidence is SyncNet's "median minus best" idea applied to this curve: the
best r minus the median r over all lags (0: the best lag does not stand out;
the drawn fixture scores about 0.8). When either signal has nothing to
follow (silence, a mouth that never changes) the answer is ``no_signal``
with confidence 0, instead of an arbitrary lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.signal

SPEECH_BAND = (200.0, 4000.0)  # Hz: where voiced speech energy lives
SILENCE_RMS = 1e-4  # full scale 1.0: quieter than this throughout is silence
STILL_MOUTH = 0.5  # grey levels: a mouth region whose pixels vary less than this is still
DEFAULT_MAX_OFFSET = 15  # frames, as SyncNet's vshift


@dataclass(frozen=True)
class SyncResult:
    """The sync estimate and the curve it came from (``lags`` in frames, ``curve`` Pearson r)."""

    offset_frames: int | None
    offset_ms: float | None
    confidence: float
    fps: float
    no_signal: bool
    reason: str = ""
    lags: list[int] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"offset_frames": self.offset_frames, "offset_ms": self.offset_ms, "confidence": self.confidence,
                "fps": self.fps, "no_signal": self.no_signal, "reason": self.reason, "lags": self.lags,
                "curve": self.curve}


def audio_envelope(wav: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """Speech-band log energy of each video frame's interval, shape [frames] (dB re full scale).

    Frames past the end of the audio get the floor value (silence).
    """
    low, high = SPEECH_BAND
    high = min(high, 0.45 * sample_rate)
    sos = scipy.signal.butter(4, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    band = scipy.signal.sosfiltfilt(sos, np.asarray(wav, np.float64)) if len(wav) > 50 else np.zeros(len(wav))
    energy = np.concatenate([[0.0], np.cumsum(band * band)])
    edges = np.round(np.arange(frames + 1) * sample_rate / fps).astype(np.int64)
    edges = np.minimum(edges, len(band))
    counts = np.maximum(np.diff(edges), 1)
    mean_square = np.diff(energy[edges]) / counts
    return 10.0 * np.log10(mean_square + SILENCE_RMS**2)


def is_silent(wav: np.ndarray) -> bool:
    return len(wav) == 0 or float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < SILENCE_RMS


def mouth_thumbnails(mouth_frames: np.ndarray) -> np.ndarray:
    """Grey 16x32 thumbnails (block means) of (N, H, W, 3) uint8 mouth crops: all the estimator keeps of them."""
    grey = np.asarray(mouth_frames, np.float32).mean(axis=3)  # (N, H, W)
    h, w = grey.shape[1:]
    ys = np.linspace(0, h, 17).astype(int)
    xs = np.linspace(0, w, 33).astype(int)
    thumbs = np.add.reduceat(np.add.reduceat(grey, ys[:-1], axis=1), xs[:-1], axis=2)
    return thumbs / np.outer(np.diff(ys), np.diff(xs))[None]


def mouth_opening(thumbnails: np.ndarray) -> tuple[np.ndarray, float]:
    """Mouth opening per frame from mouth thumbnails (N, 16, 32); returns (signal, pixel variation).

    The first principal component of the thumbnails' changes over time is the
    opening, signed so that darker is more open. The pixel variation (the
    standard deviation along that component, in grey levels per pixel) says
    whether the mouth moves at all.
    """
    n = len(thumbnails)
    x = np.asarray(thumbnails, np.float64).reshape(n, -1)
    x = x - x.mean(axis=0)
    if n < 2 or not np.any(x):
        return np.zeros(n), 0.0
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    signal = u[:, 0] * s[0]
    if np.dot(signal, x.mean(axis=1)) > 0:  # brighter along the component: flip, so that darker is more open
        signal = -signal
    return signal, float(s[0] / math.sqrt(n * x.shape[1]))


def lag_curve(audio: np.ndarray, video: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between audio[t] and video[t + lag] for lag in [-max_offset, max_offset]."""
    lags = np.arange(-max_offset, max_offset + 1)
    n = min(len(audio), len(video))
    curve = np.full(len(lags), np.nan)
    for j, lag in enumerate(lags):
        a = audio[max(0, -lag) : n - max(0, lag)]
        v = video[max(0, lag) : n + min(0, lag)]
        if len(a) > 2 and a.std() > 0 and v.std() > 0:
            curve[j] = float(np.corrcoef(a, v)[0, 1])
    return lags, curve


def estimate_sync(wav: np.ndarray, sample_rate: int, mouth: np.ndarray, fps: float,
                  max_offset: int = DEFAULT_MAX_OFFSET) -> SyncResult:
    """The sync offset of a mouth region against the audio that started with it.

    ``mouth``: (N, H, W, 3) uint8 mouth crops, or their ``mouth_thumbnails`` (N, 16, 32).
    """
    thumbnails = mouth_thumbnails(mouth) if np.ndim(mouth) == 4 else np.asarray(mouth)
    n = len(thumbnails)
    if max_offset < 1 or n < 2 * max_offset + 3:
        return SyncResult(None, None, 0.0, fps, True,
                          f"{n} frames are too few for lags of +/-{max_offset} (need {2 * max_offset + 3})")
    if is_silent(wav):
        return SyncResult(None, None, 0.0, fps, True, "the audio is silent")
    opening, variation = mouth_opening(thumbnails)
    if variation < STILL_MOUTH:
        return SyncResult(None, None, 0.0, fps, True,
                          f"the mouth region does not change (variation {variation:.2f} grey levels)")
    envelope = audio_envelope(wav, sample_rate, fps, n)
    lags, curve = lag_curve(envelope, opening, max_offset)
    if np.all(np.isnan(curve)):
        return SyncResult(None, None, 0.0, fps, True, "no lag has both signals varying")
    best = int(np.nanargmax(curve))
    confidence = float(curve[best] - np.nanmedian(curve))
    offset = int(lags[best])
    return SyncResult(offset, offset * 1000.0 / fps, confidence, fps, False, "", lags.tolist(),
                      [float(c) for c in curve])
