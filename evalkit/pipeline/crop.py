"""Stage 6: face crop boxes, the 328 crop, its inner region and the masked 6-channel input.

Crop boxes are ``[x1, y1, x2, y2]`` per template frame (half-open, full-frame
pixels), read from a text file with one box per line (numbers separated by
spaces or commas; ``#`` starts a comment), or derived from per-frame landmark
files as the reference does: x from landmark 1 to landmark 31, y from
landmark 52, height = width.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np

from evalkit.config.contract import Contract
from evalkit.errors import UserError

MAX_COORDINATE = 1e6  # pixels: far beyond any video frame, below where int64 arithmetic could overflow

INTERPOLATION = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}


def load_crop_boxes(path: Path) -> np.ndarray:
    """Boxes from a text file, shape [frames, 4] int64 ([x1, y1, x2, y2] per line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"crop-box file not found: {path}")
    raw = path.read_bytes()
    if b"\0" in raw:
        raise UserError(f"{path}: binary content, not a text file of boxes (expected one 'x1 y1 x2 y2' line per frame)")
    try:
        text_of_file = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (expected one 'x1 y1 x2 y2' line per frame)") from None
    boxes = []
    for lineno, line in enumerate(text_of_file.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p for p in re.split(r"[,\s]+", text.strip("[]")) if p]
        shown = line if len(line) <= 80 else line[:77] + "..."
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise UserError(f"{path}:{lineno}: expected a box of 4 numbers 'x1 y1 x2 y2', got {shown!r}") from None
        if len(numbers) != 4:
            raise UserError(f"{path}:{lineno}: expected a box of 4 numbers 'x1 y1 x2 y2', got {len(numbers)}: "
                            f"{shown!r}")
        if not all(math.isfinite(v) and abs(v) < MAX_COORDINATE for v in numbers):
            raise UserError(f"{path}:{lineno}: box coordinates must be finite pixel positions (below "
                            f"{MAX_COORDINATE:g}), got {shown!r}")
        values = [int(round(v)) for v in numbers]
        if values[2] <= values[0] or values[3] <= values[1]:
            raise UserError(f"{path}:{lineno}: expected a box 'x1 y1 x2 y2' with x1 < x2 and y1 < y2, got {shown!r}")
        boxes.append(values)
    if not boxes:
        raise UserError(f"{path}: no crop boxes in the file (expected one 'x1 y1 x2 y2' line per frame)")
    return np.asarray(boxes, dtype=np.int64)


def box_from_landmarks(landmarks: np.ndarray, left: int = 1, right: int = 31, top: int = 52) -> list[int]:
    """The reference's square crop box from one frame's landmarks ([points, 2], x y)."""
    x1 = int(landmarks[left, 0])
    x2 = int(landmarks[right, 0])
    y1 = int(landmarks[top, 1])
    return [x1, y1, x2, y1 + (x2 - x1)]


def load_landmark_boxes(folder: Path, contract: Contract) -> np.ndarray:
    """Boxes from a folder of per-frame ``N.lms`` files (one 'x y' line per landmark), sorted by N,
    with the contract's landmark indices."""
    files = sorted(Path(folder).glob("*.lms"), key=lambda p: (0, int(p.stem)) if p.stem.isdigit() else (1, p.stem))
    if not files:
        raise UserError(f"landmark folder {folder}: no .lms files (expected one 'N.lms' per frame)")
    c = contract
    needed = max(c.landmark_left, c.landmark_right, c.landmark_top) + 1
    boxes = []
    for f in files:
        try:
            points = np.loadtxt(f, ndmin=2)
        except (ValueError, UnicodeDecodeError) as exc:
            why = " ".join(str(exc).split())[:120]
            raise UserError(f"{f}: not a landmark file ({why}); expected one 'x y' line per landmark") from None
        if points.shape[1] < 2 or len(points) < needed:
            raise UserError(f"{f}: {len(points)} landmarks of {points.shape[1]} columns; expected 'x y' lines, at "
                            f"least {needed} landmarks (the contract reads landmarks {c.landmark_left}, "
                            f"{c.landmark_right} and {c.landmark_top})")
        if not (np.isfinite(points).all() and np.abs(points).max() < MAX_COORDINATE):
            raise UserError(f"{f}: landmark coordinates must be finite pixel positions (below {MAX_COORDINATE:g})")
        box = box_from_landmarks(points, c.landmark_left, c.landmark_right, c.landmark_top)
        if box[2] <= box[0]:  # square: no width, no height (a box file with it is refused: x1 < x2)
            raise UserError(f"{f}: landmark {c.landmark_right} (x {box[2]}) is not right of landmark "
                            f"{c.landmark_left} (x {box[0]}): the crop box {box} would have no width; expected "
                            "the face's landmarks (check the file, or the contract's landmark_left / landmark_right)")
        boxes.append(box)
    return np.asarray(boxes, dtype=np.int64)


def check_boxes_fit(boxes: np.ndarray, width: int, height: int, source: Path) -> None:
    """Every box must lie inside the frame."""
    bad = np.flatnonzero((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height))
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{source}: box {i} {boxes[i].tolist()} lies outside the {width}x{height} frame "
            f"({bad.size} boxes do)"
        )


class CropPreparer:
    """Turns a full frame and its box into the generator's image input, reusing its buffers.

    ``prepare`` returns the [1, 6, H, W] float32 input: channels 0-2 the inner
    region in the contract's channel order, 3-5 the same with ``mask_box``
    blacked out, all times ``input_scale``. It also keeps ``crop`` (the
    crop_size x crop_size RGB crop) and ``inner`` (the inner region, RGB,
    uint8): the ground truth that the model's output is compared with.
    """

    def __init__(self, contract: Contract):
        self.contract = contract
        self.interpolation = INTERPOLATION[contract.resize_interpolation]
        self.crop = np.empty((contract.crop_size, contract.crop_size, 3), dtype=np.uint8)
        self.model_input = np.empty(contract.image_input_shape, dtype=np.float32)
        # each byte's input value, float32(byte * input_scale) computed as numpy does it (in float64, then
        # rounded): a table look-up gives the very values of that multiply, at a third of its cost
        self._scale_table = np.empty(256, np.float32)
        np.multiply(np.arange(256, dtype=np.uint8), contract.input_scale, out=self._scale_table, casting="unsafe")
        ix1, iy1, ix2, iy2 = contract.inner_box
        self.inner = self.crop[iy1:iy2, ix1:ix2]
        order = [2, 1, 0] if contract.channel_order == "bgr" else [0, 1, 2]
        self._order = order

    def crop_frame(self, frame: np.ndarray, box) -> np.ndarray:
        """Resize the box's pixels to crop_size into ``self.crop``; returns ``self.inner`` (a view)."""
        x1, y1, x2, y2 = (int(v) for v in box)
        size = self.contract.crop_size
        cv2.resize(frame[y1:y2, x1:x2], (size, size), dst=self.crop, interpolation=self.interpolation)
        return self.inner

    def prepare(self, frame: np.ndarray, box) -> np.ndarray:
        self.crop_frame(frame, box)
        c = self.contract
        planes = self.model_input[0, :3]
        channels = cv2.split(self.inner)
        for dst, src in enumerate(self._order):
            plane = planes[dst]
            looked_up = cv2.LUT(channels[src], self._scale_table, dst=plane)
            if looked_up is not plane:  # not written in place (it is, for a contiguous plane of the right size)
                plane[...] = looked_up
        self.model_input[0, 3:] = planes
        mx1, my1, mx2, my2 = c.mask_box
        self.model_input[0, 3:, my1:my2, mx1:mx2] = 0.0
        return self.model_input
