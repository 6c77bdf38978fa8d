"""Crop, inner region, masked copy and the 6-channel input (CONTRACT.md, Video)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer, box_from_landmarks, load_crop_boxes
from evalkit.errors import UserError
from evalkit.config.suite import load_suite
from tests.conftest import demo_suite_data, write_suite


@pytest.fixture
def frame():
    return np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def test_input_is_inner_region_then_masked_copy(frame):
    c = Contract()
    prep = CropPreparer(c)
    box = (100, 80, 400, 380)
    x = prep.prepare(frame, box)
    crop = cv2.resize(frame[80:380, 100:400], (328, 328), interpolation=cv2.INTER_CUBIC)
    inner_bgr = crop[4:324, 4:324, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    assert x.shape == (1, 6, 320, 320) and x.dtype == np.float32
    assert np.array_equal(prep.crop, crop)
    # atol 1e-7: x / 255 against x * (1 / 255) in float32, one float32 step (6e-8) apart at most near 1; a
    # grey level off is 0.004
    np.testing.assert_allclose(x[0, :3], inner_bgr, rtol=0, atol=1e-7)
    masked = x[0, 3:]
    assert (masked[:, 5:310, 5:315] == 0).all()  # the mask box [5, 5, 315, 310], half-open
    outside = np.ones((320, 320), bool)
    outside[5:310, 5:315] = False
    assert np.array_equal(masked[:, outside], x[0, :3][:, outside])
    assert outside.sum() == 320 * 320 - 305 * 310


def test_channel_order_is_a_setting(frame):
    bgr = CropPreparer(Contract()).prepare(frame, (0, 0, 328, 328)).copy()
    rgb = CropPreparer(Contract(channel_order="rgb")).prepare(frame, (0, 0, 328, 328))
    assert np.array_equal(bgr[0, :3], rgb[0, 2::-1])
    # atol 1e-7: float32 against float64 division, at most half a float32 step (3e-8) near 1
    np.testing.assert_allclose(rgb[0, 0], frame[4:324, 4:324, 0] / 255, atol=1e-7)  # box 328: resize is identity


def test_mask_box_from_the_suite_changes_the_mask(fixtures_dir, tmp_path, frame):
    data = demo_suite_data(fixtures_dir)
    data["contract"] = {"mask_box": [0, 160, 320, 320]}  # lower half only
    suite = load_suite(write_suite(tmp_path / "s.yaml", data)).suite
    c = suite.contract_for(suite.models[0])
    assert c.mask_box == (0, 160, 320, 320)
    x = CropPreparer(c).prepare(frame, (0, 0, 328, 328))
    assert (x[0, 3:, 160:] == 0).all()
    assert np.array_equal(x[0, 3:, :160], x[0, :3, :160])


def test_crop_box_file_and_landmarks(tmp_path):
    path = tmp_path / "boxes.txt"
    path.write_text("# comment\n1 2 30 40\n[5, 6, 70, 80]\n")
    assert load_crop_boxes(path).tolist() == [[1, 2, 30, 40], [5, 6, 70, 80]]
    path.write_text("1 2 3\n")
    with pytest.raises(UserError, match=r"boxes.txt:1: expected a box"):
        load_crop_boxes(path)
    lms = np.zeros((68, 2))
    lms[1] = (100, 0)
    lms[31] = (260, 0)
    lms[52] = (0, 190)
    assert box_from_landmarks(lms) == [100, 190, 260, 350]  # x: landmarks 1..31, y from 52, height = width


def test_landmark_folder_uses_the_contracts_landmarks(tmp_path):
    from evalkit.pipeline.crop import load_landmark_boxes

    lms = np.zeros((68, 2))
    lms[1], lms[31], lms[52] = (100, 0), (260, 0), (0, 190)
    lms[2], lms[30], lms[50] = (110, 0), (250, 0), (0, 180)
    for i in (0, 1, 10):  # sorted by frame number, not by name
        np.savetxt(tmp_path / f"{i}.lms", lms + i)
    assert load_landmark_boxes(tmp_path, Contract()).tolist() == [
        [100, 190, 260, 350], [101, 191, 261, 351], [110, 200, 270, 360]]
    other = Contract(landmark_left=2, landmark_right=30, landmark_top=50)
    assert load_landmark_boxes(tmp_path, other)[0].tolist() == [110, 180, 250, 320]


@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_input_values_are_numpys_multiply_bit_for_bit(order):
    """Each input value is float32(byte * input_scale) as numpy's multiply gives it (a table look-up now): for
    every byte value, in either channel order, the masked copy the same outside the mask."""
    c = Contract(channel_order=order)
    frame = np.zeros((328, 328, 3), np.uint8)
    frame[4:324, 4:324] = np.random.default_rng(8).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    frame[4, 4:260, 0] = np.arange(256)  # every byte value, in the first row
    x = CropPreparer(c).prepare(frame, (0, 0, 328, 328))  # box 328: the resize is the identity
    inner = frame[4:324, 4:324, ::-1] if order == "bgr" else frame[4:324, 4:324]
    expected = np.empty((3, 320, 320), np.float32)
    for k in range(3):
        np.multiply(inner[:, :, k], c.input_scale, out=expected[k], casting="unsafe")
    assert np.array_equal(x[0, :3].view(np.uint32), expected.view(np.uint32))
    mx1, my1, mx2, my2 = c.mask_box
    expected[:, my1:my2, mx1:mx2] = 0.0
    assert np.array_equal(x[0, 3:].view(np.uint32), expected.view(np.uint32))
