"""Stage 8: the generator's output back into a picture.

Output [1, 3, H, W] -> times ``output_scale``, clipped to [0, 255] and
truncated to uint8 (as the reference's ``astype(np.uint8)``, without its
wrap-around unless ``contract.output_cast`` is ``wrap``) -> RGB -> written into the inner region of the 328 crop -> the
crop resized back to the box size -> pasted into a copy of the full frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import INTERPOLATION


class Paster:
    """Reusable buffers for turning model outputs into frames."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self.interpolation = INTERPOLATION[contract.resize_interpolation]
        h, w = contract.inner_height, contract.inner_width
        self._scaled = np.empty((3, h, w), dtype=np.float32)
        self._interleaved = np.empty((h, w, 3), dtype=np.float32)
        self.generated = np.empty((h, w, 3), dtype=np.uint8)
        self._order = [2, 1, 0] if contract.channel_order == "bgr" else [0, 1, 2]
        self._inverse_order = [self._order.index(dst) for dst in range(3)]  # the plane that fills channel dst

    def to_uint8(self, output: np.ndarray) -> np.ndarray:
        """[1, 3, H, W] model output -> (H, W, 3) uint8 RGB (a reused buffer). NaN becomes 0.

        ``output_cast: clip`` clips to [0, 255] and truncates; ``wrap`` truncates toward zero and wraps
        modulo 256, as the reference script's ``np.array(pred * 255, dtype=np.uint8)`` does on x86
        (255.9 -> 255, 256.0 -> 0, -0.5 -> 0, -1.0 -> 255).
        """
        np.multiply(output[0], self.contract.output_scale, out=self._scaled)
        if self.contract.output_cast == "wrap":
            np.nan_to_num(self._scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
            wrapped = np.mod(np.trunc(self._scaled), 256.0)  # exact in float32 for |values| < 2**24
            for src, dst in enumerate(self._order):
                self.generated[:, :, dst] = wrapped[src]
            return self.generated
        # clip to [0, 255] with NaN -> 0, +inf -> 255, -inf -> 0: fmax and fmin return the number where one
        # side is NaN, so two passes do what nan_to_num and clip did in five, with no temporary masks
        np.fmax(self._scaled, 0.0, out=self._scaled)
        np.fmin(self._scaled, 255.0, out=self._scaled)
        # planes -> (H, W, 3) in float32 (OpenCV's merge: a copy), then one contiguous cast (float -> uint8
        # truncates): the same pixels as casting each plane into a strided channel, at two thirds of the cost
        interleaved = cv2.merge([self._scaled[src] for src in self._inverse_order], dst=self._interleaved)
        np.copyto(self.generated, interleaved, casting="unsafe")
        return self.generated

    def paste(self, crop: np.ndarray, generated: np.ndarray, frame: np.ndarray, box, out: np.ndarray) -> np.ndarray:
        """Write ``generated`` into ``crop``'s inner region, resize to the box, paste into ``out`` (a copy of frame)."""
        ix1, iy1, ix2, iy2 = self.contract.inner_box
        crop[iy1:iy2, ix1:ix2] = generated
        x1, y1, x2, y2 = (int(v) for v in box)
        np.copyto(out, frame)
        region = out[y1:y2, x1:x2]
        resized = cv2.resize(crop, (x2 - x1, y2 - y1), dst=region, interpolation=self.interpolation)  # in place
        if resized is not region:  # OpenCV wrote elsewhere (a box reaching outside the frame: numpy says so)
            region[...] = resized
        return out
