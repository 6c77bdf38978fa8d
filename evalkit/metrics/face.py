"""The talking-head field's face metrics, with dlib's real models (the optional extra ``evalkit[face]``).

Models: dlib's frontal face detector (HOG, inside dlib), its 68-point shape
predictor (the iBUG 300-W scheme that the field's LMD uses: 0-16 jaw, 36-47
eyes, 48-59 outer lips, 60-67 inner lips) and its face-descriptor ResNet (128-d;
two photos of one person lie below 0.6 apart, dlib's own threshold). ``dlib-bin``
ships prebuilt dlib, ``face_recognition_models`` the two model files: both from
PyPI, both offline. Without them ``face_models_missing()`` says what to install,
and no caller raises.

Pure functions over numpy arrays (``landmark_distance``, ``mouth_opening_ratio``,
``descriptor_distance``, ``face_rect_from_box``) and one class holding the loaded
models (``FaceModels``). Landmarks are float (x, y) pixel positions of the image
they were found in; LMD is therefore in that image's pixels (see ``landmark_distance``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

FACE_EXTRA_HINT = ('pip install "evalkit[face]" (dlib-bin and face_recognition_models from PyPI) for the landmark '
                   'distance (LMD), the mouth opening from landmarks and identity')
"""The one line a report or the CLI shows where the extra is not installed."""

MOUTH_POINTS = np.arange(48, 68)  # outer lips 48-59, inner lips 60-67 (SyncTalk's LMD: these 20 points)
ALL_POINTS = np.arange(68)
EYE_POINTS = np.arange(36, 48)
LOWER_LIP_POINTS = np.array([55, 56, 57, 58, 59, 65, 66, 67])

SAME_PERSON = 0.6  # dlib's descriptor distance below which two faces are one person

DEFAULT_RECT_FROM_BOX = (-0.05, -0.38, 0.93, 0.60)
"""The face rectangle dlib's detector would give, relative to the contract's crop box [x1, y1, x2, y2] of width W
(x1 from landmark 1, x2 from landmark 31, y1 from landmark 52 = the nose, y2 = y1 + W): (left, top, right, bottom)
= (x1 + a W, y1 + b W, x1 + c W, y1 + d W). Measured on scikit-image's astronaut() with dlib's own landmarks standing
in for the box's (jaw points 0-1 and 15-16, nose bridge 28). A run calibrates its own from the detector on its first
frames (``calibrate_rect_from_box``) and uses this only where the detector finds no face."""


def face_models_missing() -> str | None:
    """None when the face extra is usable here; otherwise the one line saying how to get it."""
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        return FACE_EXTRA_HINT
    try:
        import dlib  # noqa: F401 (a wheel built for another platform fails here, not mid-run)
    except ImportError as exc:
        return f"{FACE_EXTRA_HINT}; dlib is installed but does not import here: {' '.join(str(exc).split())[:200]}"
    if not _model_file("shape_predictor_68_face_landmarks.dat").is_file():
        return f"{FACE_EXTRA_HINT}; face_recognition_models lacks its model files: reinstall it"
    return None


def _model_file(name: str) -> Path:
    # The package's __init__ imports pkg_resources (gone from recent setuptools): find its folder without running it.
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(spec.origin).parent / "models" / name


class FaceModels:
    """dlib's detector, 68-point predictor and descriptor network, loaded once per process (``load``)."""

    def __init__(self):
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(_model_file("shape_predictor_68_face_landmarks.dat")))
        self.recogniser = dlib.face_recognition_model_v1(str(_model_file("dlib_face_recognition_resnet_model_v1.dat")))
        self._known: OrderedDict = OrderedDict()  # descriptors by what they were computed from (``descriptor``)
        self._lock = threading.Lock()

    @staticmethod
    @lru_cache(maxsize=1)
    def load() -> "FaceModels":
        return FaceModels()

    def detect(self, image: np.ndarray, upsample: int = 1) -> np.ndarray:
        """Faces in an RGB uint8 image as rows (left, top, right, bottom, score), best first; (0, 5) if none."""
        rects, scores, _ = self.detector.run(np.ascontiguousarray(image), upsample, 0.0)
        found = np.array([[r.left(), r.top(), r.right(), r.bottom(), s] for r, s in zip(rects, scores)], np.float64)
        return found[np.argsort(-found[:, 4])] if len(found) else np.zeros((0, 5))

    def _rect(self, rect):
        left, top, right, bottom = (int(round(v)) for v in rect[:4])
        return self._dlib.rectangle(left, top, right, bottom)

    def landmarks(self, image: np.ndarray, rect) -> np.ndarray:
        """The 68 points (x, y) of the face in ``rect`` (left, top, right, bottom) of an RGB uint8 image, (68, 2)."""
        shape = self.predictor(np.ascontiguousarray(image), self._rect(rect))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    KNOWN_DESCRIPTORS = 256  # remembered descriptors (1 KB each): a suite's template frames, over its combinations

    SHARED_WAIT_SECONDS = 10.0  # how long to wait for a descriptor that another process is computing

    def descriptor(self, image: np.ndarray, rect, points: np.ndarray, shared: Path | None = None) -> np.ndarray:
        """The 128-d identity descriptor of the face whose 68 ``points`` lie in ``rect`` (its aligned 150 px chip).

        The network is the costly part (about 80 ms a face here): a descriptor is remembered by exactly what it is
        computed from (the image's bytes, by their BLAKE2 digest, the rectangle and the points as dlib receives
        them), so that the template frames every combination of a suite compares with are computed once per
        process, and give the same numbers as before. With ``shared`` (a folder that the processes of one run
        share), once per run: the first process to need one computes it and leaves it there (``_shared``)."""
        image = np.ascontiguousarray(image)
        box = self._rect(rect)
        pixels = [(int(round(x)), int(round(y))) for x, y in points]
        key = (hashlib.blake2b(image.data, digest_size=20).digest(), image.shape, str(image.dtype),
               (box.left(), box.top(), box.right(), box.bottom()), tuple(pixels))
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
                return known.copy()

        def compute() -> np.ndarray:
            shape = self._dlib.full_object_detection(box, [self._dlib.point(x, y) for x, y in pixels])
            return np.array(self.recogniser.compute_face_descriptor(image, shape), np.float64)

        found = compute() if shared is None else self._shared(Path(shared), key, compute)
        with self._lock:
            self._known[key] = found.copy()
            while len(self._known) > self.KNOWN_DESCRIPTORS:
                self._known.popitem(last=False)
        return found

    def _shared(self, folder: Path, key: tuple, compute) -> np.ndarray:
        """The descriptor for ``key`` from ``folder`` (its 128 float64 values, exactly as computed), else computed
        and left there. One process computes it: the first to create its claim; another waits for the file (at
        most SHARED_WAIT_SECONDS: a process killed with its claim costs a wait, never a wrong number), then
        computes it itself."""
        name = folder / (hashlib.blake2b(repr(key).encode(), digest_size=20).hexdigest() + ".f64")
        claim = name.with_suffix(".claim")
        waited = 0.0
        while True:
            found = _read_descriptor(name)
            if found is not None:
                return found
            try:
                folder.mkdir(parents=True, exist_ok=True)
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                if waited < self.SHARED_WAIT_SECONDS:
                    time.sleep(0.02)
                    waited += 0.02
                    continue
                return compute()  # its owner is gone or slow: compute it here (the same numbers)
            except OSError:
                return compute()  # no room to share: compute it here
            break
        found = compute()
        try:
            partial = name.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(found.astype("<f8").tobytes())
            os.replace(partial, name)  # whole before it is visible
            os.unlink(claim)
        except OSError:
            pass
        return found


def _read_descriptor(name: Path) -> np.ndarray | None:
    try:
        data = name.read_bytes()
    except OSError:
        return None
    return np.frombuffer(data, "<f8").astype(np.float64) if len(data) == 128 * 8 else None


def face_rect_from_box(box, relation=DEFAULT_RECT_FROM_BOX) -> tuple[float, float, float, float]:
    """The face rectangle (left, top, right, bottom) for a crop box [x1, y1, x2, y2] (``DEFAULT_RECT_FROM_BOX``)."""
    x1, y1, x2, _ = (float(v) for v in box)
    w = x2 - x1
    a, b, c, d = relation
    return x1 + a * w, y1 + b * w, x1 + c * w, y1 + d * w


def rect_relation(box, rect) -> tuple[float, float, float, float]:
    """The inverse of ``face_rect_from_box``: ``rect`` relative to ``box`` in units of the box's width."""
    x1, y1, x2, _ = (float(v) for v in box)
    w = x2 - x1
    return tuple(float(v) for v in ((rect[0] - x1) / w, (rect[1] - y1) / w, (rect[2] - x1) / w, (rect[3] - y1) / w))


def landmark_distance(reference: np.ndarray, candidate: np.ndarray, points=MOUTH_POINTS) -> np.ndarray:
    """LMD per frame: the mean Euclidean distance between corresponding ``points`` of two landmark sets.

    ``reference``, ``candidate``: (N, 68, 2) or (68, 2) in the same image's pixels; returns (N,) in those pixels
    (SyncTalk's LMD over the mouth points 48-67 by default; pass ``ALL_POINTS`` for all 68). No normalisation:
    evalkit measures on the full frames, so the unit is a pixel of the video's own resolution.

    >>> a = np.zeros((68, 2)); b = a.copy(); b[48:68, 1] += 3.0
    >>> landmark_distance(a, b).tolist()
    [3.0]
    """
    a, b = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if a.shape != b.shape or a.shape[-2:] != (68, 2):
        raise ValueError(f"expected two (N, 68, 2) landmark sets of one shape, got {a.shape} and {b.shape}")
    a, b = a.reshape(-1, 68, 2), b.reshape(-1, 68, 2)
    return np.linalg.norm(a[:, points] - b[:, points], axis=-1).mean(axis=1)


def mouth_opening_ratio(landmarks: np.ndarray) -> np.ndarray:
    """The mouth's opening per frame from its landmarks: inner-lip height over mouth width, (N,).

    Height: the mean of the three inner-lip gaps |61-67|, |62-66|, |63-65|; width: the corners |48-54|. Scale-free,
    so a head moving towards the camera does not open the mouth.
    """
    p = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    gaps = ((61, 67), (62, 66), (63, 65))
    height = np.mean([np.linalg.norm(p[:, top] - p[:, bottom], axis=-1) for top, bottom in gaps], axis=0)
    width = np.linalg.norm(p[:, 48] - p[:, 54], axis=-1)
    return height / np.maximum(width, 1e-9)


def descriptor_distance(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Euclidean distance between identity descriptors, per row: (N, 128) x 2 -> (N,) (below 0.6: one person)."""
    a, b = np.atleast_2d(np.asarray(reference, np.float64)), np.atleast_2d(np.asarray(candidate, np.float64))
    return np.linalg.norm(a - b, axis=1)
