"""evalkit crop-boxes: boxes from landmarks (the contract's rule) and a contact sheet of the crops."""

from __future__ import annotations

import cv2
import numpy as np

from evalkit.cli import main
from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, load_crop_boxes
from evalkit.report.crop_preview import SHEET_COLUMNS, SHEET_TILE, sample_frames
from tests.conftest import decode
from tests.helpers import write_landmarks


def test_sample_frames_are_evenly_spaced_and_include_both_ends():
    assert sample_frames(317) == [0, 29, 57, 86, 115, 144, 172, 201, 230, 259, 287, 316]
    assert sample_frames(5) == [0, 1, 2, 3, 4]


def test_crop_boxes_from_landmarks_equal_the_fixture_boxes(fixtures_dir, tmp_path, capsys):
    clip = fixtures_dir / "clip"
    expected = load_crop_boxes(clip / "crop_boxes.txt")
    write_landmarks(tmp_path / "lms", expected)
    out = tmp_path / "boxes.txt"
    assert main(["crop-boxes", "--landmarks", str(tmp_path / "lms"), "--video", str(clip / "talking_head.mkv"),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "boxes.png")
    assert out.read_text().startswith("# x1 y1 x2 y2 per frame")
    assert np.array_equal(load_crop_boxes(out), expected)
    sheet = cv2.imread(str(tmp_path / "boxes.png"))[:, :, ::-1]
    assert sheet.shape == (3 * SHEET_TILE, SHEET_COLUMNS * SHEET_TILE, 3)
    # tile 5 (frame 144) is that frame's 328 crop scaled down: away from the outlines and the label it matches
    frame = decode(clip / "talking_head.mkv", 145)[144]
    prep = CropPreparer(Contract())
    prep.crop_frame(frame, expected[144])
    scaled = cv2.resize(prep.crop, (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA).astype(int)
    tile = sheet[SHEET_TILE:2 * SHEET_TILE, SHEET_TILE:2 * SHEET_TILE].astype(int)
    centre = np.s_[100:140, 20:140]  # below the mouth box, inside the inner region's outline
    assert np.abs(tile[centre] - scaled[centre]).max() == 0


def test_sheet_path_and_too_few_landmarks(fixtures_dir, tmp_path, capsys):
    clip = fixtures_dir / "clip"
    write_landmarks(tmp_path / "lms", load_crop_boxes(clip / "crop_boxes.txt")[:10])
    code = main(["crop-boxes", "--landmarks", str(tmp_path / "lms"), "--video", str(clip / "talking_head.mkv"),
                 "--out", str(tmp_path / "b.txt"), "--sheet", str(tmp_path / "s.png")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "10 .lms files for a video of 317 frames" in err
    assert not (tmp_path / "b.txt").exists() and not (tmp_path / "s.png").exists()
