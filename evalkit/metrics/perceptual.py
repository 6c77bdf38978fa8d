"""LPIPS, FID and FVD from the user's own ONNX exports of the original networks (evalkit ships no weights).

Each original's preprocessing is done here, so the ONNX file is only the network (docs/field-metrics.md says how
to export each from its usual PyTorch checkpoint):

- **LPIPS** (Zhang et al. 2018, the ``lpips`` package, v0.1): RGB scaled to [-1, 1], then LPIPS's own scaling
  layer ((x - shift) / scale per channel); the ONNX network (``lpips.LPIPS(net="alex").net``) maps that to L feature
  maps; each is unit-normalised over its channels (x / (sqrt(sum_c x^2) + 1e-10)); the squared differences are
  weighted per channel by the learned linear layer (``linear``: an .npz of L weight vectors, one per map) and
  averaged over space; the distance is the sum over layers. Per frame pair; lower is more alike.
- **FID** (Heusel et al. 2017, as ``pytorch-fid``): RGB resized to 299x299 (bilinear, half-pixel centres: torch's
  ``interpolate(align_corners=False)``), scaled to [-1, 1]; the network gives the 2048-d pool features; the Fréchet
  distance of the two Gaussians fitted to the output's and the ground truth's features,
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` with ``scipy.linalg.sqrtm`` (as pytorch-fid: an eps on the
  diagonals where the product is singular, the imaginary part of rounding dropped).
- **FVD** (Unterthiner et al. 2018): clips of 16 consecutive frames, each resized to 224x224 (bilinear), scaled to
  [-1, 1], as [N, 3, 16, 224, 224]; the I3D network gives one feature row per clip (its 400 logits in the original);
  the Fréchet distance of the two sets, as FID.

FID and FVD of a few hundred frames (a dozen clips) against 2048 (400) dimensions are strongly biased upwards and
compare runs of one input with each other only: the sample counts are kept beside every value.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.linalg

from evalkit.errors import UserError

HIGHER_IS_BETTER = {"lpips": False, "fid": False, "fvd": False}
LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)  # lpips.pretrained_networks ScalingLayer
LPIPS_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
LPIPS_EPS = 1e-10
FID_SIZE = 299
FVD_SIZE = 224
FVD_CLIP = 16
FRECHET_EPS = 1e-6  # pytorch-fid's offset on the covariances' diagonals where their product is singular


# --- the formulas, on numpy arrays ------------------------------------------------------------------------------

def to_unit_range(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1]."""
    x = np.asarray(frames, np.float32).transpose(0, 3, 1, 2)
    return x / 127.5 - 1.0


def lpips_input(frames: np.ndarray) -> np.ndarray:
    """What LPIPS's network sees: [-1, 1], then the ScalingLayer, (N, 3, H, W) float32."""
    return (to_unit_range(frames) - LPIPS_SHIFT[:, None, None]) / LPIPS_SCALE[:, None, None]


def lpips_from_features(features0: list[np.ndarray], features1: list[np.ndarray],
                        weights: list[np.ndarray]) -> np.ndarray:
    """LPIPS per pair from the network's L feature maps of both images ((N, C_l, H_l, W_l) each) and the L linear
    weight vectors ((C_l,) each): sum_l mean_hw sum_c w_c (f0 / |f0| - f1 / |f1|)^2, (N,)."""
    if not (len(features0) == len(features1) == len(weights)):
        raise ValueError(f"{len(features0)} and {len(features1)} feature maps for {len(weights)} weight vectors")
    total = 0.0
    for f0, f1, w in zip(features0, features1, weights):
        f0, f1 = np.asarray(f0, np.float64), np.asarray(f1, np.float64)
        n0 = f0 / (np.sqrt(np.sum(f0 * f0, axis=1, keepdims=True)) + LPIPS_EPS)
        n1 = f1 / (np.sqrt(np.sum(f1 * f1, axis=1, keepdims=True)) + LPIPS_EPS)
        weighted = np.tensordot(np.square(n0 - n1), np.asarray(w, np.float64).reshape(-1), axes=([1], [0]))
        total = total + weighted.mean(axis=(1, 2))
    return np.asarray(total, np.float64)


def resized_unit_range(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, size, size) float32 in [-1, 1], bilinear with half-pixel centres."""
    out = np.empty((len(frames), 3, size, size), np.float32)
    for i, frame in enumerate(frames):
        resized = cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return out


def fvd_clip(frames: np.ndarray) -> np.ndarray:
    """16 consecutive (H, W, 3) uint8 RGB frames -> one I3D input, (1, 3, 16, 224, 224) float32 in [-1, 1]."""
    if len(frames) != FVD_CLIP:
        raise ValueError(f"an FVD clip is {FVD_CLIP} frames, got {len(frames)}")
    return resized_unit_range(frames, FVD_SIZE).transpose(1, 0, 2, 3)[None]


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between two Gaussians: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"Gaussians of different dimension: {mu1.shape}, {sigma1.shape} and {mu2.shape}, "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * FRECHET_EPS
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # rounding's imaginary part (pytorch-fid checks it is tiny; so do the tests)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FeatureGaussian:
    """The mean and covariance of feature rows, accumulated batch by batch (float64 sums; the rows are not kept)."""

    def __init__(self):
        self.count = 0
        self._sum = self._outer = None

    def add(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64).reshape(len(features), -1)
        if self._sum is None:
            self._sum, self._outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        self.count += len(x)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, covariance with n - 1 in the denominator: numpy's ``np.cov(rowvar=False)``)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature rows, got {self.count}")
        mu = self._sum / self.count
        return mu, (self._outer - self.count * np.outer(mu, mu)) / (self.count - 1)


def frechet_of(a: FeatureGaussian, b: FeatureGaussian) -> float:
    return frechet_distance(*a.stats(), *b.stats())


# --- the user's ONNX networks -----------------------------------------------------------------------------------

class OnnxNetwork:
    """One ONNX file run with ONNX Runtime on the CPU: ``run(x)`` -> every output, in the file's order."""

    def __init__(self, path: Path, what: str):
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise UserError(f"cannot load the {what} network {path}: {' '.join(str(exc).split())[:300]}") from exc
        self.path, self.what = Path(path), what
        self.input = self.session.get_inputs()[0]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input.name: np.ascontiguousarray(x, np.float32)})


class Lpips:
    """LPIPS with the user's feature network (``model``) and linear weights (``linear``, .npz: one vector per
    feature map, in the network's output order; arrays named lin0, lin1, ... or in the file's order)."""

    def __init__(self, model: Path, linear: Path):
        self.network = OnnxNetwork(model, "LPIPS")
        try:
            with np.load(linear) as data:
                names = sorted(data.files, key=lambda k: (len(k), k))
                self.weights = [np.asarray(data[k], np.float64).reshape(-1) for k in names]
        except (OSError, ValueError) as exc:
            raise UserError(f"metrics.lpips.linear {linear}: not an .npz of weight vectors ({exc})") from None
        outputs = self.network.session.get_outputs()
        if len(outputs) != len(self.weights):
            raise UserError(f"metrics.lpips: {model} has {len(outputs)} outputs, {linear} holds {len(self.weights)} "
                            "weight vectors: expected one per feature map")

    def __call__(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """LPIPS of each pair of (N, H, W, 3) uint8 RGB frames, (N,)."""
        f0 = self.network.run(lpips_input(reference))
        f1 = self.network.run(lpips_input(candidate))
        for f, w in zip(f0, self.weights):
            if f.ndim != 4 or f.shape[1] != len(w):
                raise UserError(f"metrics.lpips: a feature map of shape {list(f.shape)} for {len(w)} weights: "
                                "expected [N, C, H, W] with C the weights' length")
        return lpips_from_features(f0, f1, self.weights)


class FeatureExtractor:
    """FID's Inception (frames -> [N, 2048]) or FVD's I3D (clips -> [N, 400]): the first output, one row each."""

    def __init__(self, model: Path, what: str):
        self.network = OnnxNetwork(model, what)

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """FID features of (N, H, W, 3) uint8 RGB frames."""
        return self.network.run(resized_unit_range(frames, FID_SIZE))[0].reshape(len(frames), -1)

    def clip(self, frames: np.ndarray) -> np.ndarray:
        """FVD features of one 16-frame clip, (1, D)."""
        return self.network.run(fvd_clip(frames))[0].reshape(1, -1)
