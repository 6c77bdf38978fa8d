"""Frame sources for the standalone metric commands: a video file or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from evalkit.media.frame_list import natural_key
from evalkit.errors import UserError
from evalkit.media.ffmpeg import probe_video
from evalkit.media.decode import FrameReader

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class FrameSource:
    """Where frames come from, with their count and size."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float | None
    images: tuple[Path, ...] = ()

    @contextmanager
    def reader(self) -> Iterator[Iterator[np.ndarray]]:
        """An iterator of (H, W, 3) uint8 RGB frames (the array may be reused between steps)."""
        if self.images:
            yield (_read_image(p, self.width, self.height) for p in self.images)
            return
        info = probe_video(self.path)
        buffer = np.empty((self.height, self.width, 3), np.uint8)
        with FrameReader(info) as reader:
            yield (buffer for _ in range(self.frames) if reader.read_into(buffer))


def _read_image(path: Path, width: int, height: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path}")
    if image.shape[:2] != (height, width):
        raise UserError(f"{path} is {image.shape[1]}x{image.shape[0]}, the folder's first image is {width}x{height}")
    return image[:, :, ::-1]


def open_frames(path: Path) -> FrameSource:
    """A video file (anything ffmpeg reads) or a folder of images, in natural order (2.png before 10.png)."""
    path = Path(path)
    if path.is_dir():
        # natural order: frame 2 before frame 10 (a plain sort pairs 0, 1, 10, 100, 2, ...)
        images = tuple(sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key))
        if not images:
            raise UserError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        first = cv2.imread(str(images[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise UserError(f"cannot read image {images[0]}")
        return FrameSource(path, len(images), first.shape[1], first.shape[0], None, images)
    if not path.exists():
        raise UserError(f"file not found: {path} (expected a video file or a folder of images)")
    info = probe_video(path)
    return FrameSource(path, info.frames, info.width, info.height, info.fps)


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    """'x,y,w,h' -> (x, y, w, h)."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--roi {text!r}: expected four integers x,y,w,h (e.g. --roi 100,200,64,48)") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UserError(f"--roi {text!r}: x and y must be >= 0, w and h > 0")
    return x, y, w, h


FACE_WINDOW_MARGIN = 0.15  # of the boxes' union's larger side, on every side: the paste's seams stay in view


def face_window(boxes: np.ndarray, width: int, height: int,
                margin: float = FACE_WINDOW_MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), half-open: the part of a width x height frame that shows every box of ``boxes``
    ([N, 4] x1 y1 x2 y2, half-open, as crop_boxes.txt) with ``margin`` around their union, clipped to the
    frame, its width and height even (H.264's 4:2:0 needs them even) where the frame allows.

    >>> face_window(np.array([[176, 176, 464, 464], [166, 171, 454, 459]]), 640, 480)
    (121, 126, 509, 480)
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return 0, 0, width, height
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    pad = margin * max(x1 - x0, y1 - y0)
    x0, y0 = max(0, int(np.floor(x0 - pad))), max(0, int(np.floor(y0 - pad)))
    x1, y1 = min(width, int(np.ceil(x1 + pad))), min(height, int(np.ceil(y1 + pad)))
    if x1 <= x0 or y1 <= y0:  # boxes wholly outside the frame: show the frame
        return 0, 0, width, height
    if (x1 - x0) % 2:  # grow by one where there is room, else shrink by one
        x1, x0 = (x1 + 1, x0) if x1 < width else (x1, x0 - 1) if x0 > 0 else (x1 - 1, x0)
    if (y1 - y0) % 2:
        y1, y0 = (y1 + 1, y0) if y1 < height else (y1, y0 - 1) if y0 > 0 else (y1 - 1, y0)
    return x0, y0, x1, y1
