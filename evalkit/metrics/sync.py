"""Audio-visual sync without a neural network: the lag that best lines up loudness and mouth opening.

Sign convention, everywhere in evalkit: **a positive offset means the mouth
moves after the sound it belongs to (the video lags the audio)**. An offset
of +2 frames at 25 fps: the mouth shows at frame t + 2 what the audio says at
frame t (80 ms late).

Signals, one value per video frame:

- audio: the amplitude (RMS, linear) of the 1-4 kHz band (``SPEECH_BAND``, a
  zero-phase band-pass, so filtering adds no delay) over each frame's own
  interval [i / fps, (i + 1) / fps). The F2/F3 region follows the lips'
  aperture best (Grant & Seitz 2000; Chandrasekaran et al. 2009); on the real
  motion clip it correlates 0.63 with the true opening, the 200-4000 Hz log
  energy used before only 0.48.
- video: the mouth's opening (``MouthTrack``), followed on small grey thumbnails of the mouth region
  (``mouth_thumbnails``, 3 KB a frame, streamed). The head moves the mouth around its box far more than
  the lips move, so each thumbnail is registered to a keyframe (ECC, translation only; a new keyframe only
  when the mouth leaves the old one's reach, so errors do not add up) and kept shifted back (stabilised);
  each pixel's slow drift (a Gaussian of ``DRIFT_SECONDS``) is removed. The opening is the first principal
  component of what is left plus the lips' vertical separation (geometry: the lower half's shift against
  the upper half's), each at unit variance; the geometry signs the component, so what an open mouth looks
  like (dark inside, teeth) does not matter. On the three real clips of ../shared/data/real it follows the
  true inner-lip area with Pearson r 0.79, 0.68 and 0.62 (the brightness rule before it: 0.82, 0.78 and
  -0.61, reading the clip whose open mouth shows teeth backwards).

Both are compared by normalised cross-correlation (Pearson's r over the
frames the two overlap at that lag) for every lag in [-max_offset,
+max_offset]. The offset is the lag of the highest r: the raw lag, with no
calibration constant (a real speaker's mouth often opens a frame or two
before the sound, which then reads as -1 or -2).

Confidence, comparable across clips of any length: the best r minus the
median r over all lags, times sqrt(n), n the frames compared. Between
unrelated signals r shrinks like 1/sqrt(n), so this is the peak's height in
units of chance; a 3 s clip needs a peak twice as high as a 12 s clip to
score the same. The result is ``reliable`` only when the confidence reaches
``RELIABLE_CONFIDENCE`` (7.5), the peak is not at the edge of the search
range (|offset| == max_offset), there are at least ``2 * max_offset + 3``
frames, and the audio covers at least ``MIN_AUDIO_COVERAGE`` of the video;
otherwise ``reason`` says which. The threshold is checked on every real
clip (tests/benchmarks/sync_calibration.py, per clip in docs/sync.md): true
speech shifted by -6..6 frames is right and reliable on each whole clip,
reversed and unrelated speech never reliable; below about 8 s this estimator
says "unreliable" rather than risk a wrong answer.

``video_lag`` lines up an output's mouth with its ground truth's the same way, without audio.
When either signal has nothing to follow (silence, a mouth
that never changes, too little audio) the answer is ``no_signal`` with
confidence 0, instead of an arbitrary lag.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.ndimage
import scipy.signal

SPEECH_BAND = (1000.0, 4000.0)  # Hz: the F2/F3 region, whose loudness follows the lips' aperture best
SILENCE_RMS = 1e-4  # full scale 1.0: quieter than this throughout is silence
STILL_MOUTH = 0.5  # grey levels: a mouth region whose pixels vary less than this (after stabilising) is still
DEFAULT_MAX_OFFSET = 15  # frames, as SyncNet's vshift
THUMBNAIL_SHAPE = (36, 84)  # (height, width): the mouth box shrunk about 3x; 3 KB a frame as uint8
DRIFT_SECONDS = 0.5  # Gaussian sigma of the slow per-pixel drift (lighting, residual head motion) removed
PCA_SHAPE = (18, 42)  # the stabilised thumbnail halved for the principal components: 756 pixels
TRACK_CHUNK = 256  # frames a MouthTrack stores (and detrends) together
TRACK_IN_MEMORY = 8  # chunks (2,048 frames, 6 MB) a MouthTrack holds in memory; older ones go to a temporary file
DETRENDED_KEPT = 2048  # frames up to which a MouthTrack keeps its detrended thumbnails between passes (6 MB)
TRACK_BLUR = 1.0  # thumbnail pixels: Gaussian sigma of the images registered
KEY_AGREEMENT = 1.0  # thumbnail pixels: a keyframe's answer further than this from the step's prediction re-keys
VIDEO_LAG_COMPONENTS = 8  # principal components of the ground truth's mouth compared by video_lag
VIDEO_LAG_RELIABLE_CONFIDENCE = 7.5  # chance units, as the audio's (calibrated in tests/benchmarks/sync_calibration.py)
RELIABLE_CONFIDENCE = 7.5  # chance units (see above): whole clip, unrelated speech <= 6.2, true >= 8.4
ENVELOPE_BLOCK, ENVELOPE_CONTEXT = 5.0, 0.5  # seconds: audio band-passed a block at a time, with context
MIN_AUDIO_COVERAGE = 0.9  # the audio must last at least this fraction of the video to give a reliable verdict


@dataclass(frozen=True)
class SyncResult:
    """The sync estimate and the curve it came from (``lags`` in frames, ``curve`` Pearson r).

    ``reliable`` is True only for an estimate to act on; ``reason`` says why whenever it is False.
    """

    offset_frames: int | None
    offset_ms: float | None
    confidence: float
    fps: float
    no_signal: bool
    reason: str = ""
    lags: list[int] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    reliable: bool = False
    peak_frames: float | None = None  # the peak's position between lags (parabola through the best and its neighbours)

    def __post_init__(self) -> None:
        if not self.reliable and not self.reason:
            raise ValueError("an unreliable SyncResult needs a reason")

    def to_dict(self) -> dict:
        return {"offset_frames": self.offset_frames, "offset_ms": self.offset_ms, "confidence": self.confidence,
                "fps": self.fps, "no_signal": self.no_signal, "reliable": self.reliable, "reason": self.reason,
                "peak_frames": self.peak_frames, "lags": self.lags, "curve": self.curve}


def no_signal(fps: float, reason: str) -> SyncResult:
    return SyncResult(None, None, 0.0, fps, True, reason)


ENVELOPES_KEPT = 4  # audio envelopes remembered (a run's sync estimates of the output, the ground truth, landmarks)
_ENVELOPES: OrderedDict = OrderedDict()
_ENVELOPES_LOCK = threading.Lock()


def audio_envelope(wav: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS amplitude of ``SPEECH_BAND`` over each video frame's interval, shape [frames] (full scale 1.0).

    Frames past the end of the audio get 0 (silence). Long audio is filtered in blocks of ``ENVELOPE_BLOCK``
    seconds, each with ``ENVELOPE_CONTEXT`` seconds of the real signal on both sides (the filter's response
    has died away long before), so memory stays a few MB whatever the audio's length.

    A run asks for the same envelope three times (its output's sync, its ground truth's, the landmarks'): the
    last ``ENVELOPES_KEPT`` are remembered by the audio's digest (BLAKE2, a tenth of the filter's cost) and the
    arguments, and handed out as copies.
    """
    wav = np.ascontiguousarray(wav)
    key = (hashlib.blake2b(wav.data, digest_size=20).digest(), wav.dtype.str, wav.shape, sample_rate, fps, frames)
    with _ENVELOPES_LOCK:
        known = _ENVELOPES.get(key)
        if known is not None:
            _ENVELOPES.move_to_end(key)
            return known.copy()
    envelope = _audio_envelope(wav, sample_rate, fps, frames)
    with _ENVELOPES_LOCK:
        _ENVELOPES[key] = envelope.copy()
        while len(_ENVELOPES) > ENVELOPES_KEPT:
            _ENVELOPES.popitem(last=False)
    return envelope


def _audio_envelope(wav: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    low, high = SPEECH_BAND
    high = min(high, 0.45 * sample_rate)
    sos = scipy.signal.butter(4, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    edges = np.round(np.arange(frames + 1) * sample_rate / fps).astype(np.int64)
    edges = np.minimum(edges, len(wav))
    cumulative = np.zeros(frames + 1)  # the band's energy from the start to each frame edge
    if len(wav) > 50:
        block, context = int(ENVELOPE_BLOCK * sample_rate), int(ENVELOPE_CONTEXT * sample_rate)
        before = 0.0
        for start in range(0, len(wav), block):
            stop = min(start + block, len(wav))
            lo, hi = max(0, start - context), min(len(wav), stop + context)
            band = scipy.signal.sosfiltfilt(sos, np.asarray(wav[lo:hi], np.float64))[start - lo : stop - lo]
            energy = np.concatenate([[0.0], np.cumsum(band * band)])
            inside = (edges >= start) & (edges <= stop)
            cumulative[inside] = before + energy[edges[inside] - start]
            before += energy[-1]
    counts = np.maximum(np.diff(edges), 1)
    return np.sqrt(np.maximum(np.diff(cumulative), 0.0) / counts)


def is_silent(wav: np.ndarray) -> bool:
    """Whether the RMS of ``wav`` is below ``SILENCE_RMS`` (summed in float64, a block at a time: no float64 copy
    of a long clip)."""
    if len(wav) == 0:
        return True
    block = 1 << 20
    total = sum(float(np.dot(part, part)) for part in
                (np.asarray(wav[i : i + block], np.float64) for i in range(0, len(wav), block)))
    return math.sqrt(total / len(wav)) < SILENCE_RMS


def mouth_thumbnails(mouth_frames: np.ndarray) -> np.ndarray:
    """Grey ``THUMBNAIL_SHAPE`` uint8 thumbnails (area means) of (N, H, W, 3) uint8 mouth crops.

    All the estimator keeps of the mouth: 3 KB a frame, enough to follow the lips under head motion.
    """
    h, w = THUMBNAIL_SHAPE
    out = np.empty((len(mouth_frames), h, w), np.uint8)
    grey = np.empty(np.shape(mouth_frames)[1:3], np.float32)
    for i, frame in enumerate(mouth_frames):  # one frame at a time: no float copy of the whole batch
        out[i] = np.rint(cv2.resize(channel_mean(frame, grey), (w, h), interpolation=cv2.INTER_AREA))
    return out


def channel_mean(frame: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The mean of an (H, W, 3) uint8 frame's channels into ``out`` (H, W) float32: bit for bit
    ``np.mean(frame, axis=2, dtype=np.float32)`` (the sum of three uint8 is exact in float32 whatever the order,
    then one division by 3), at a fifth of its cost (numpy's reduction over a 3-long axis is slow)."""
    np.add(frame[..., 0], frame[..., 1], out=out, dtype=np.float32)
    np.add(out, frame[..., 2], out=out, dtype=np.float32)
    return np.divide(out, np.float32(3), out=out)


_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)


def _ecc_shift(template: np.ndarray, image: np.ndarray, guess: np.ndarray) -> np.ndarray | None:
    """Where ``template``'s content lies in ``image`` (dx, dy), by ECC (translation only) from ``guess``; None when
    ECC cannot align them (featureless, or diverging)."""
    warp = np.array([[1, 0, guess[0]], [0, 1, guess[1]]], np.float32)
    try:
        _, warp = cv2.findTransformECC(template, image, warp, cv2.MOTION_TRANSLATION, _ECC_CRITERIA, None, 5)
    except cv2.error:
        return None
    return warp[:, 2].astype(np.float64)


class MouthTrack:
    """The mouth of one video, streamed a frame at a time: tracked without drift, kept small.

    ``add`` takes each frame's grey mouth thumbnail (``mouth_thumbnails``), finds where the mouth has moved
    since the first frame and keeps the thumbnail shifted back (stabilised) as uint8: 3 KB a frame, whatever
    the clip's length; nothing else grows with it. ``opening`` then derives the mouth signal in bounded
    chunks (no n x n matrix, no float copy of the clip).

    Tracking registers each frame to a **keyframe** (ECC, translation only, on lightly blurred thumbnails),
    not to the previous frame, so errors do not add up: summed frame-to-frame steps wandered 68 thumbnail
    pixels over 523 frames of a drawn mouth. A frame-to-frame step predicts the position and guards the
    keyframe's answer; when they disagree by more than ``KEY_AGREEMENT`` pixels (the mouth has moved out of
    the keyframe's reach, or changed too much), the previous frame becomes the keyframe.
    """

    def __init__(self) -> None:
        self.frames = 0
        self._chunks: list[np.ndarray | None] = []  # stabilised uint8 thumbnails, TRACK_CHUNK frames each (None:
        self._spill = None  # spilled to this temporary file, at chunk index x chunk bytes)
        self._positions: list[np.ndarray] = []  # (dx, dy) per frame, TRACK_CHUNK frames each
        self._sum = np.zeros(THUMBNAIL_SHAPE, np.float64)  # of the stabilised thumbnails: their mean image
        self._key = self._prev = None
        self._key_at = self._prev_at = np.zeros(2)
        self.keyframes = 0
        self._components = None  # ((fps, frames), mean, components, variances): components()'s last answer
        self._kept = None  # ((fps, frames), [(start, stop, x), ...]): _detrended's last answer (see forget_detrended)

    def add(self, thumbnail: np.ndarray) -> None:
        """One frame's ``THUMBNAIL_SHAPE`` uint8 grey mouth thumbnail, in order."""
        image = cv2.GaussianBlur(np.asarray(thumbnail, np.float32), (0, 0), TRACK_BLUR)
        if self._key is None:
            at = np.zeros(2)
            self._key, self._key_at = image, at
            self.keyframes = 1
        else:
            step = _ecc_shift(self._prev, image, np.zeros(2))
            predicted = self._prev_at + (step if step is not None else 0.0)
            found = _ecc_shift(self._key, image, predicted - self._key_at)
            if found is not None and np.max(np.abs(self._key_at + found - predicted)) <= KEY_AGREEMENT:
                at = self._key_at + found
            else:  # out of the keyframe's reach: the previous frame (its place known) becomes the keyframe
                self._key, self._key_at = self._prev, self._prev_at
                self.keyframes += 1
                found = _ecc_shift(self._key, image, predicted - self._key_at)
                at = self._key_at + found if found is not None else predicted
        self._prev, self._prev_at = image, at
        i = self.frames % TRACK_CHUNK
        if i == 0:
            self._spill_old_chunks()
            self._chunks.append(np.empty((TRACK_CHUNK, *THUMBNAIL_SHAPE), np.uint8))
            self._positions.append(np.empty((TRACK_CHUNK, 2)))
        shift = np.float32([[1, 0, -at[0]], [0, 1, -at[1]]])
        stable = cv2.warpAffine(np.asarray(thumbnail, np.uint8), shift, THUMBNAIL_SHAPE[::-1],
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._chunks[-1][i] = stable
        self._positions[-1][i] = at
        self._sum += stable
        self.frames += 1
        self._kept = None

    def _spill_old_chunks(self) -> None:
        """Full chunks beyond the newest ``TRACK_IN_MEMORY`` go to a temporary file (deleted when the track is),
        so a long clip's track costs disk, not memory: 600 s of video would otherwise hold 45 MB."""
        full = len(self._chunks)
        for k in range(max(0, full - TRACK_IN_MEMORY)):
            if self._chunks[k] is None:
                continue
            if self._spill is None:
                import tempfile

                self._spill = tempfile.TemporaryFile(prefix="evalkit-mouth-")
            self._spill.seek(k * self._chunks[k].nbytes)
            self._spill.write(self._chunks[k].tobytes())
            self._chunks[k] = None

    def _chunk(self, k: int) -> np.ndarray:
        chunk = self._chunks[k]
        if chunk is not None:
            return chunk
        chunk = np.empty((TRACK_CHUNK, *THUMBNAIL_SHAPE), np.uint8)
        self._spill.seek(k * chunk.nbytes)
        self._spill.readinto(memoryview(chunk).cast("B"))
        return chunk

    def extend(self, thumbnails: np.ndarray) -> MouthTrack:
        for thumbnail in thumbnails:
            self.add(thumbnail)
        return self

    @classmethod
    def of(cls, mouth: np.ndarray | MouthTrack) -> MouthTrack:
        """A track of (N, H, W, 3) uint8 mouth crops or their (N, h, w) thumbnails (a track is returned as is)."""
        if isinstance(mouth, MouthTrack):
            return mouth
        if np.ndim(mouth) == 4:
            track = cls()
            for start in range(0, len(mouth), TRACK_CHUNK):
                track.extend(mouth_thumbnails(mouth[start : start + TRACK_CHUNK]))
            return track
        return cls().extend(np.asarray(mouth))

    @property
    def positions(self) -> np.ndarray:
        """Where the mouth is in each frame against the first, (dx, dy) in thumbnail pixels, shape [N, 2]."""
        return np.concatenate(self._positions)[: self.frames] if self.frames else np.zeros((0, 2))

    def stabilised(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The stabilised uint8 thumbnails [start, stop) (a copy)."""
        stop = self.frames if stop is None else min(stop, self.frames)
        if stop <= start:
            return np.zeros((0, *THUMBNAIL_SHAPE), np.uint8)
        first, last = start // TRACK_CHUNK, (stop - 1) // TRACK_CHUNK
        part = (np.concatenate([self._chunk(k) for k in range(first, last + 1)]) if last > first
                else self._chunk(first))
        return part[start - first * TRACK_CHUNK : stop - first * TRACK_CHUNK].copy()

    def _detrended(self, fps: float, frames: int):
        """(start, stop, x): the first ``frames`` stabilised thumbnails, halved to ``PCA_SHAPE`` (2x2 means),
        each pixel's slow drift (a Gaussian of ``DRIFT_SECONDS``) removed, float32 [stop - start, pixels], in
        chunks. Each chunk is filtered with ``margin`` frames of context on each side, the Gaussian's whole
        reach, so the chunks join into exactly the filter of the whole clip.

        Up to ``DETRENDED_KEPT`` frames the chunks are kept for the next pass over the same frames (an estimate
        makes three: the components, the track's own projection, the video lag's) until ``forget_detrended``
        or the next ``add``: the same arrays, so the same numbers, computed once."""
        key = (fps, frames)
        if self._kept is not None and self._kept[0] == key:
            yield from self._kept[1]
            return
        kept = [] if frames <= DETRENDED_KEPT else None
        sigma = DRIFT_SECONDS * fps
        margin = int(4.0 * sigma + 0.5)  # scipy's reach at its default truncate=4.0
        h, w = PCA_SHAPE
        for start in range(0, frames, TRACK_CHUNK):
            stop = min(start + TRACK_CHUNK, frames)
            lo, hi = max(0, start - margin), min(frames, stop + margin)
            x = self.stabilised(lo, hi).astype(np.float32).reshape(hi - lo, h, 2, w, 2).mean(axis=(2, 4))
            x = x.reshape(hi - lo, h * w)
            x -= scipy.ndimage.gaussian_filter1d(x, sigma, axis=0, mode="nearest") if hi - lo > 1 else x.mean(0)
            part = x[start - lo : stop - lo]
            if kept is not None:
                kept.append((start, stop, part if (lo, hi) == (start, stop) else part.copy()))  # no margins kept
            yield start, stop, part
        if kept is not None:
            self._kept = key, kept

    def forget_detrended(self) -> None:
        """Drop the detrended thumbnails kept between passes (``_detrended``): up to 6 MB a track."""
        self._kept = None

    def components(self, fps: float, count: int = 1, frames: int | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
        """The leading principal components of the detrended thumbnails: (mean [pixels], components [count,
        pixels], variances [count]), from the covariance accumulated chunk by chunk (``PCA_SHAPE``: 756
        pixels, so the matrix is 4.6 MB whatever the clip's length)."""
        n = self.frames if frames is None else frames
        key = (fps, n)  # the whole decomposition is kept: sync (1 component) and video_lag (8) share one pass
        if self._components is None or self._components[0] != key:
            d = PCA_SHAPE[0] * PCA_SHAPE[1]
            total, outer = np.zeros(d), np.zeros((d, d))
            for _, _, x in self._detrended(fps, n):
                total += x.sum(axis=0, dtype=np.float64)
                outer += (x.T @ x).astype(np.float64)
            mean = total / max(n, 1)
            variances, vectors = np.linalg.eigh(outer / max(n, 1) - np.outer(mean, mean))
            self._components = key, mean, vectors[:, ::-1].T, np.maximum(variances[::-1], 0.0)
        _, mean, vectors, variances = self._components
        return mean, vectors[:count].copy(), variances[:count].copy()

    def project(self, fps: float, mean: np.ndarray, components: np.ndarray, frames: int | None = None) -> np.ndarray:
        """The detrended thumbnails' coordinates along ``components`` (from ``components``, this track's or
        another's), float64 [frames, count]."""
        n = self.frames if frames is None else frames
        out = np.empty((n, len(components)))
        for start, stop, x in self._detrended(fps, n):
            out[start:stop] = (x - mean.astype(np.float32)) @ components.T.astype(np.float32)
        return out

    def lip_separation(self, fps: float, frames: int | None = None) -> np.ndarray:
        """How far apart the lips are, per frame, in thumbnail pixels against the clip's mean mouth (detrended).

        Geometry, not appearance: the lower half of each stabilised thumbnail (lower lip, jaw) is registered
        to the lower half of the clip's mean thumbnail, the upper half (upper lip) to the upper half, and the
        lower half's vertical shift minus the upper half's is the separation: positive when the mouth opens,
        whatever an open mouth looks like (a dark inside, teeth, a tongue). Frames ECC cannot align read as
        their neighbours.
        """
        n = self.frames if frames is None else frames
        mean = (self._sum / max(self.frames, 1)).astype(np.float32)
        half = THUMBNAIL_SHAPE[0] // 2
        upper, lower = np.ascontiguousarray(mean[:half]), np.ascontiguousarray(mean[half:])
        separation = np.full(n, np.nan)
        for start in range(0, n, TRACK_CHUNK):
            part = self.stabilised(start, min(start + TRACK_CHUNK, n)).astype(np.float32)
            for i, image in enumerate(part):
                top = _ecc_shift(upper, np.ascontiguousarray(image[:half]), np.zeros(2))
                bottom = _ecc_shift(lower, np.ascontiguousarray(image[half:]), np.zeros(2))
                if top is not None and bottom is not None:
                    separation[start + i] = bottom[1] - top[1]
        good = np.isfinite(separation)
        if not good.any():
            return np.zeros(n)
        separation = np.interp(np.arange(n), np.flatnonzero(good), separation[good])
        return separation - scipy.ndimage.gaussian_filter1d(separation, DRIFT_SECONDS * fps, mode="nearest")

    def opening(self, fps: float, frames: int | None = None) -> tuple[np.ndarray, float]:
        """The mouth's opening per frame (unit variance, larger = more open) and its pixel variation.

        Two measures of the stabilised, detrended mouth, each scaled to unit variance and added:

        - appearance: the first principal component of the thumbnails (what changes most in the mouth);
        - geometry: ``lip_separation``, the lips' vertical distance.

        The geometry fixes the component's sign (the sign that agrees with the lips moving apart), so no
        rule about how an open mouth looks is needed: "darker is more open" read the teeth of an opening
        mouth backwards (-0.61 with the true opening on a real face showing its teeth). On the real clips
        of ../shared/data/real the sum follows the true inner-lip area with r 0.83 (motion), 0.72 (face1),
        0.67 (face4) (tests/benchmarks/sync_calibration.py).

        The pixel variation, the standard deviation along the component in grey levels per (halved) pixel,
        says whether the mouth moves at all.
        """
        n = self.frames if frames is None else frames
        if n < 2:
            return np.zeros(n), 0.0
        mean, component, variance = self.components(fps, 1, n)
        variation = float(math.sqrt(variance[0] / component.shape[1]))
        appearance = self.project(fps, mean, component, n)[:, 0]
        geometry = self.lip_separation(fps, n)
        if np.dot(appearance - appearance.mean(), geometry - geometry.mean()) < 0:
            appearance = -appearance
        return _unit(appearance) + _unit(geometry), variation


def _unit(x: np.ndarray) -> np.ndarray:
    """x centred and scaled to unit standard deviation (zeros when it does not vary)."""
    x = x - x.mean()
    scale = x.std()
    return x / scale if scale > 1e-12 else np.zeros_like(x)


def video_lag(reference: np.ndarray | MouthTrack, candidate: np.ndarray | MouthTrack, fps: float,
              max_offset: int = DEFAULT_MAX_OFFSET) -> SyncResult:
    """How many frames ``candidate``'s mouth motion lags ``reference``'s (the same face: an output and its
    ground truth), with no audio and no rule for what "open" looks like.

    Both tracks' detrended thumbnails are projected onto the reference's ``VIDEO_LAG_COMPONENTS`` leading
    principal components, and for each lag the Pearson r of reference[t] and candidate[t + lag] over all
    those coordinates of the overlapping frames is taken; the offset is the best lag (+2: the candidate shows
    two frames late what the reference shows), the confidence (best r - median r) * sqrt(n) as for the
    audio. ``reliable`` needs ``VIDEO_LAG_RELIABLE_CONFIDENCE`` and the peak inside the range.
    """
    reference, candidate = MouthTrack.of(reference), MouthTrack.of(candidate)
    n = min(reference.frames, candidate.frames)
    need = 2 * max_offset + 3
    if n < need:
        return no_signal(fps, f"{n} frames are too few for lags of +/-{max_offset} (need {need})")
    mean, components, variances = reference.components(fps, VIDEO_LAG_COMPONENTS, n)
    if variances[0] <= 1e-9:
        return no_signal(fps, "the ground truth's mouth does not change")
    a = reference.project(fps, mean, components, n)
    b = candidate.project(fps, mean, components, n)
    lags = np.arange(-max_offset, max_offset + 1)
    curve = np.full(len(lags), np.nan)
    for j, lag in enumerate(lags):
        x = a[max(0, -lag) : n - max(0, lag)]
        y = b[max(0, lag) : n + min(0, lag)]
        x, y = x - x.mean(axis=0), y - y.mean(axis=0)
        norm = math.sqrt(float(np.sum(x * x)) * float(np.sum(y * y)))
        if norm > 0:
            curve[j] = float(np.sum(x * y)) / norm
    return curve_result(lags, curve, n, fps, VIDEO_LAG_RELIABLE_CONFIDENCE,
                        "the output's mouth does not follow the ground truth's at any lag",
                        "the output's mouth does not change")


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


def estimate_sync(wav: np.ndarray, sample_rate: int, mouth: np.ndarray | MouthTrack, fps: float,
                  max_offset: int = DEFAULT_MAX_OFFSET) -> SyncResult:
    """The sync offset of a mouth region against the audio that started with it.

    ``mouth``: (N, H, W, 3) uint8 mouth crops, their ``mouth_thumbnails`` (N, h, w), or a ``MouthTrack`` fed
    while the frames streamed. Only the frames the audio covers are compared.
    """
    if max_offset < 1:
        raise ValueError(f"max_offset must be at least 1 frame, got {max_offset}")
    track = MouthTrack.of(mouth)
    need = 2 * max_offset + 3
    audio_frames = int(len(wav) * fps / sample_rate + 1e-6)
    n = min(track.frames, audio_frames)
    if track.frames < need:
        return no_signal(fps, f"{track.frames} frames are too few for lags of +/-{max_offset} (need {need})")
    if n < need:
        return no_signal(fps, f"the audio ({len(wav) / sample_rate:.2f} s) covers only {n} of the "
                         f"{track.frames} frames; lags of +/-{max_offset} need {need}")
    if is_silent(wav):
        return no_signal(fps, "the audio is silent")
    opening, variation = track.opening(fps, n)
    if variation < STILL_MOUTH:
        return no_signal(fps, f"the mouth region does not change (variation {variation:.2f} grey levels)")
    return sync_of_signals(audio_envelope(wav, sample_rate, fps, n), opening, fps, max_offset, track.frames)


def sync_of_signals(envelope: np.ndarray, opening: np.ndarray, fps: float, max_offset: int,
                    video_frames: int) -> SyncResult:
    """The offset, confidence and reliability of one audio signal against one mouth signal (both [n]).

    ``video_frames``: the whole video's length, of which these n frames are the part the audio covers.
    """
    n = min(len(envelope), len(opening))
    lags, curve = lag_curve(envelope, opening, max_offset)
    short = [f"the audio covers only {n} of the {video_frames} frames"] if n < MIN_AUDIO_COVERAGE * video_frames else []
    return curve_result(lags, curve, n, fps, RELIABLE_CONFIDENCE, "the best lag does not stand out from chance",
                        "no lag has both signals varying", short)


def curve_result(lags: np.ndarray, curve: np.ndarray, n: int, fps: float, threshold: float, weak: str,
                 flat: str, reasons: list[str] = ()) -> SyncResult:
    """A lag curve (Pearson r per lag, NaN where a side does not vary; ``n`` frames compared) as a result: the
    best lag, its confidence ((best r - median r) * sqrt(n)), and ``reliable`` unless the confidence is below
    ``threshold`` (``weak`` says what that means), the peak is at the range's edge, or one of ``reasons`` holds.
    All NaN: no signal, for the reason ``flat``."""
    if np.all(np.isnan(curve)):
        return no_signal(fps, flat)
    best = int(np.nanargmax(curve))
    confidence = float((curve[best] - np.nanmedian(curve)) * math.sqrt(n))
    offset = int(lags[best])
    reasons = list(reasons)
    if abs(offset) == lags[-1]:
        reasons.append(f"the best lag is at the edge of the search range (+/-{lags[-1]}): the true one may lie "
                       "beyond it")
    if confidence < threshold:
        reasons.append(f"confidence {confidence:.1f} is below {threshold:g}: {weak}")
    return SyncResult(offset, offset * 1000.0 / fps, confidence, fps, False, "; ".join(reasons), lags.tolist(),
                      [float(c) for c in curve], reliable=not reasons, peak_frames=subframe_peak(lags, curve, best))


def subframe_peak(lags: np.ndarray, curve: np.ndarray, best: int) -> float:
    """Where the curve's peak lies between whole lags: the vertex of the parabola through the best lag and its
    two neighbours (the best lag itself at the edge of the range or beside a NaN). Two runs one frame apart
    differ by about 1 here even when a broad peak ties two whole lags (a 4 s drawn clip: 0.5 against 1.45).
    """
    if best == 0 or best == len(curve) - 1 or np.isnan(curve[best - 1]) or np.isnan(curve[best + 1]):
        return float(lags[best])
    before, peak, after = curve[best - 1], curve[best], curve[best + 1]
    bend = before - 2 * peak + after
    return float(lags[best] + (0.5 * (before - after) / bend if bend < 0 else 0.0))
