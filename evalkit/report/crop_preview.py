"""``evalkit crop-boxes``: the crop boxes the contract derives from landmarks, written out and shown.

From a folder of per-frame ``N.lms`` files (one 'x y' line per landmark) the
boxes are the reference's: x1 = landmark 1's x, x2 = landmark 31's x, y1 =
landmark 52's y, y2 = y1 + (x2 - x1) (square; the indices are the contract's
``landmark_left/right/top``). They are written as a box file (one 'x1 y1 x2 y2'
line per frame after a '#' header, what ``crop.load_crop_boxes`` reads), and a
contact sheet PNG shows a sample of the crops the model will see, so that a
wrong landmark scheme shows before a long run.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, check_boxes_fit, load_landmark_boxes
from evalkit.errors import UserError
from evalkit.media.frames import open_frames
from evalkit.record.io import write_bytes_atomic, write_text_atomic

SHEET_SAMPLES = 12  # frames shown, evenly spaced over the video
SHEET_COLUMNS = 4
SHEET_TILE = 164  # pixels per crop on the sheet: half of the 328 crop, 12 tiles fit a 656x492 image


def box_file_text(boxes: np.ndarray, source: str) -> str:
    """A box file: a '#' header naming where the boxes came from, then one 'x1 y1 x2 y2' line per frame."""
    header = f"# x1 y1 x2 y2 per frame (half-open, pixels), from {source}\n"
    return header + "".join(f"{x1} {y1} {x2} {y2}\n" for x1, y1, x2, y2 in boxes.tolist())


def sample_frames(frames: int, samples: int = SHEET_SAMPLES) -> list[int]:
    """Up to ``samples`` evenly spaced frame indices from 0 to frames - 1."""
    return sorted({int(round(v)) for v in np.linspace(0, frames - 1, min(samples, frames))})


def contact_sheet(video: Path, boxes: np.ndarray, contract: Contract, samples: int = SHEET_SAMPLES) -> np.ndarray:
    """RGB image: the contract's crop (crop_size, bicubic) of evenly spaced frames, scaled to SHEET_TILE, with the
    frame number and the inner region (what the model sees) and mouth box outlined."""
    source = open_frames(video)
    wanted = sample_frames(min(source.frames, len(boxes)), samples)
    preparer = CropPreparer(contract)
    tiles = []
    scale = SHEET_TILE / contract.crop_size
    ix1, iy1, _, _ = contract.inner_box
    inner = [round(v * scale) for v in contract.inner_box]
    mx1, my1, mx2, my2 = contract.mouth_box
    mouth = [round((mx1 + ix1) * scale), round((my1 + iy1) * scale), round((mx2 + ix1) * scale),
             round((my2 + iy1) * scale)]
    with source.reader() as frames:
        for i, frame in enumerate(frames):
            if i > wanted[-1]:
                break
            if i not in wanted:
                continue
            preparer.crop_frame(frame, boxes[i])
            tile = cv2.resize(preparer.crop, (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA)
            cv2.rectangle(tile, tuple(inner[:2]), (inner[2] - 1, inner[3] - 1), (255, 255, 255), 1)
            cv2.rectangle(tile, tuple(mouth[:2]), (mouth[2] - 1, mouth[3] - 1), (0, 220, 0), 1)
            label = f"{i}"
            cv2.putText(tile, label, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, label, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
    if len(tiles) != len(wanted):
        raise UserError(f"{video}: ended after {i + 1} frames while reading frame {wanted[len(tiles)]} for the sheet")
    rows = -(-len(tiles) // SHEET_COLUMNS)
    sheet = np.full((rows * SHEET_TILE, min(len(tiles), SHEET_COLUMNS) * SHEET_TILE, 3), 32, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, SHEET_COLUMNS)
        sheet[r * SHEET_TILE:(r + 1) * SHEET_TILE, c * SHEET_TILE:(c + 1) * SHEET_TILE] = tile
    return sheet


def derive_crop_boxes(landmarks: Path, video: Path, out: Path, sheet: Path | None = None,
                      contract: Contract | None = None, samples: int = SHEET_SAMPLES) -> tuple[Path, Path, int]:
    """Write ``out`` (the box file) and the contact sheet (default: ``out`` with '.png'); returns both paths and
    the number of boxes. The video may be a video file or a folder of frame images (natural order)."""
    c = contract or Contract()
    landmarks, video, out = Path(landmarks), Path(video), Path(out)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"--samples {samples}: expected a whole number of crops on the sheet, at least 1 (default "
                        f"{SHEET_SAMPLES}; more than the video's frames shows each frame once)")
    if not landmarks.is_dir():
        raise UserError(f"--landmarks {landmarks}: folder not found (expected a folder of N.lms files, one per "
                        "frame)")
    boxes = load_landmark_boxes(landmarks, c)
    source = open_frames(video)
    if len(boxes) < source.frames:
        raise UserError(f"--landmarks {landmarks}: {len(boxes)} .lms files for a video of {source.frames} frames "
                        "(one per frame: 0.lms ... N.lms)")
    check_boxes_fit(boxes, source.width, source.height, landmarks)
    sheet = Path(sheet) if sheet is not None else out.with_suffix(".png")
    if sheet.resolve() == out.resolve():
        raise UserError(f"--sheet {sheet} is the box file itself; give the sheet another name (a .png)")
    picture = contact_sheet(video, boxes, c, samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, box_file_text(boxes, f"landmarks {landmarks} (landmarks {c.landmark_left} -> x1, "
                                         f"{c.landmark_right} -> x2, {c.landmark_top} -> y1; square)"))
    ok, encoded = cv2.imencode(".png", picture[:, :, ::-1])
    if not ok:
        raise UserError(f"cannot encode the contact sheet as PNG for {sheet}")
    write_bytes_atomic(sheet, encoded.tobytes())
    return out, sheet, len(boxes)
