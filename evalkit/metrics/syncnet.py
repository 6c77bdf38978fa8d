"""SyncNet's LSE-D and LSE-C, for users who have a SyncNet exported to ONNX.

The procedure of joonson/syncnet_python (the one Wav2Lip, LatentSync and
MuseTalk report), in evalkit's words:

1. Audio: 13 MFCCs at 100 Hz (25 ms windows, 10 ms hop, 26 mel filters,
   512-point FFT, pre-emphasis 0.97, lifter 22, the first coefficient replaced
   by the log frame energy: ``python_speech_features.mfcc``'s defaults).
2. Windows at every video frame v where both fit: video frames v..v+4
   (224x224 colour crops, stacked [1, 3, 5, 224, 224]) and MFCC columns
   4v..4v+19 ([1, 1, 13, 20]); 25 fps, so 4 MFCC columns per frame.
3. Each stream's network maps its window to an embedding.
4. For every lag k in [-vshift, vshift]: the Euclidean distance between video
   embedding i and audio embedding i + k (audio embeddings padded with
   ``vshift`` zero rows at both ends), averaged over all windows i: one curve.
5. LSE-D = the curve's minimum; LSE-C = its median minus its minimum; the
   offset is the lag of the minimum, reported in evalkit's convention
   (positive: the mouth moves after its sound), which is syncnet_python's
   ``vshift - argmin`` too: video window i lines up with audio window i - offset.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.fft

from evalkit.errors import UserError

MFCC_RATE = 100  # columns per second
FRAMES_PER_WINDOW = 5
MFCC_PER_WINDOW = 20
SYNCNET_FPS = 25.0  # 4 MFCC columns per video frame
IMAGE_SIZE = 224


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mfcc(wav: np.ndarray, sample_rate: int = 16000, numcep: int = 13, nfilt: int = 26, nfft: int = 512,
         winlen: float = 0.025, winstep: float = 0.01, preemph: float = 0.97, ceplifter: int = 22) -> np.ndarray:
    """MFCCs as SyncNet was trained on them, shape [frames, numcep] (python_speech_features' definition)."""
    signal = np.asarray(wav, np.float64)
    signal = np.append(signal[:1], signal[1:] - preemph * signal[:-1])
    frame_len, step = int(round(winlen * sample_rate)), int(round(winstep * sample_rate))
    count = 1 if len(signal) <= frame_len else 1 + int(math.ceil((len(signal) - frame_len) / step))
    padded = np.concatenate([signal, np.zeros(max(0, (count - 1) * step + frame_len - len(signal)))])
    index = np.arange(frame_len)[None, :] + step * np.arange(count)[:, None]
    power = np.square(np.abs(np.fft.rfft(padded[index], nfft))) / nfft
    energy = power.sum(axis=1)
    energy[energy == 0] = np.finfo(float).eps
    points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), nfilt + 2))
    bins = np.floor((nfft + 1) * points / sample_rate).astype(int)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        bank[j, lo:mid] = (np.arange(lo, mid) - lo) / (mid - lo)
        bank[j, mid:hi] = (hi - np.arange(mid, hi)) / (hi - mid)
    feat = power @ bank.T
    feat[feat == 0] = np.finfo(float).eps
    cep = scipy.fft.dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :numcep]
    cep *= 1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    cep[:, 0] = np.log(energy)
    return cep


def window_count(video_frames: int, mfcc_columns: int) -> int:
    """Windows v with frames v..v+4 and MFCC columns 4v..4v+19 both present."""
    return max(0, min(video_frames - FRAMES_PER_WINDOW + 1, (mfcc_columns - MFCC_PER_WINDOW) // 4 + 1))


def lse_metrics(video_embeddings: np.ndarray, audio_embeddings: np.ndarray, vshift: int = 15) -> dict:
    """LSE-D, LSE-C, the offset (evalkit's sign) and the mean-distance curve over lags -vshift..vshift."""
    v = np.asarray(video_embeddings, np.float64)
    a = np.asarray(audio_embeddings, np.float64)
    if v.shape != a.shape or v.ndim != 2:
        raise ValueError(f"video {v.shape} and audio {a.shape} embeddings must both be [windows, dim]")
    n = len(v)
    padded = np.concatenate([np.zeros((vshift, a.shape[1])), a, np.zeros((vshift, a.shape[1]))])
    curve = np.zeros(2 * vshift + 1)
    for j in range(2 * vshift + 1):  # lag k = j - vshift: audio embedding i + k
        curve[j] = np.linalg.norm(v - padded[j : j + n], axis=1).mean()
    best = int(np.argmin(curve))
    return {
        "lse_d": float(curve[best]),
        "lse_c": float(np.median(curve) - curve[best]),
        "offset_frames": vshift - best,
        "lags": list(range(-vshift, vshift + 1)),
        "curve": curve.tolist(),
    }


class SyncNetRunner:
    """Runs a SyncNet's two ONNX streams (video and audio) and computes LSE-D / LSE-C.

    Video windows are fed to the video model as [1, 3, 5, 224, 224] float32 in
    ``channel_order`` times ``scale`` (syncnet_python: BGR, 0-255).
    """

    def __init__(self, video_model, audio_model, channel_order: str = "bgr", scale: float = 1.0, vshift: int = 15):
        import onnxruntime as ort

        self.sessions = {}
        for kind, path in (("video", video_model), ("audio", audio_model)):
            try:
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise UserError(f"cannot load SyncNet {kind} model {path}: {exc}") from exc
            expected = [1, 3, FRAMES_PER_WINDOW, IMAGE_SIZE, IMAGE_SIZE] if kind == "video" else [1, 1, 13,
                                                                                                    MFCC_PER_WINDOW]
            shape = session.get_inputs()[0].shape
            if len(shape) != len(expected) or any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected[1:])):
                raise UserError(f"SyncNet {kind} model {path}: input shape {shape}, expected {expected}")
            self.sessions[kind] = session
        self.channel_order, self.scale, self.vshift = channel_order, scale, vshift
        self._frames: list[np.ndarray] = []
        self._video_embeddings: list[np.ndarray] = []
        self._window = np.empty((1, 3, FRAMES_PER_WINDOW, IMAGE_SIZE, IMAGE_SIZE), np.float32)

    def _embed(self, kind: str, x: np.ndarray) -> np.ndarray:
        session = self.sessions[kind]
        return session.run(None, {session.get_inputs()[0].name: x})[0].reshape(-1)

    def add_frame(self, crop: np.ndarray) -> None:
        """Feed the next video frame's crop (H, W, 3 uint8 RGB); embeds each full 5-frame window as it completes."""
        resized = cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
        if self.channel_order == "bgr":
            resized = resized[:, :, ::-1]
        self._frames.append(resized.transpose(2, 0, 1).astype(np.float32) * self.scale)
        if len(self._frames) == FRAMES_PER_WINDOW:
            self._window[0] = np.stack(self._frames, axis=1)
            self._video_embeddings.append(self._embed("video", self._window))
            self._frames.pop(0)

    def result(self, wav: np.ndarray, sample_rate: int, fps: float) -> dict:
        """LSE metrics of the frames fed so far against ``wav`` (resampled to 16 kHz by the caller)."""
        if abs(fps - SYNCNET_FPS) > 0.01:
            raise UserError(f"SyncNet needs 25 fps video (4 MFCC columns per frame); this video is {fps:g} fps")
        # syncnet_python computes MFCCs of the int16 samples, not of [-1, 1] floats: same scale here.
        cep = mfcc(np.asarray(wav, np.float64) * 32768.0, sample_rate).T  # [13, columns]
        frames = len(self._video_embeddings) + FRAMES_PER_WINDOW - 1
        n = window_count(frames, cep.shape[1])
        if n == 0:
            raise UserError("too short for SyncNet: needs 5 frames and 0.2 s of audio")
        audio = np.stack([self._embed("audio", cep[None, None, :, 4 * v : 4 * v + MFCC_PER_WINDOW].astype(np.float32))
                          for v in range(n)])
        video = np.stack(self._video_embeddings[:n])
        return lse_metrics(video, audio, self.vshift)
