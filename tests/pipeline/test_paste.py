"""Model output back to pixels: x255, clip, truncate, paste."""

from __future__ import annotations

import cv2
import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.paste import Paster


def test_to_uint8_truncates_clips_and_orders_channels():
    out = np.zeros((1, 3, 320, 320), np.float32)
    out[0, 0, 0, 0] = 0.5  # 127.5 -> 127 (truncated, as astype(np.uint8))
    out[0, 1, 0, 0] = 1.5  # clipped to 255
    out[0, 2, 0, 0] = -0.2  # clipped to 0
    out[0, 0, 0, 1] = np.nan  # no value: 0
    got = Paster(Contract()).to_uint8(out)  # model order BGR -> RGB pixels
    assert got[0, 0].tolist() == [0, 255, 127]
    assert got[0, 1, 2] == 0
    got_rgb = Paster(Contract(channel_order="rgb")).to_uint8(out)
    assert got_rgb[0, 0].tolist() == [127, 255, 0]


def test_paste_back_resizes_the_crop_to_the_box():
    c = Contract()
    paster = Paster(c)
    frame = np.full((200, 300, 3), 7, np.uint8)
    crop = np.full((328, 328, 3), 100, np.uint8)
    generated = np.full((320, 320, 3), 200, np.uint8)
    out = np.empty_like(frame)
    paster.paste(crop, generated, frame, (10, 20, 174, 184), out)
    assert (crop[4:324, 4:324] == 200).all() and (crop[:4] == 100).all()
    expected = cv2.resize(crop, (164, 164), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(out[20:184, 10:174], expected)
    assert (out[:20] == 7).all() and (out[:, :10] == 7).all()
    assert (frame == 7).all()  # the template frame is not touched


def test_to_uint8_is_each_planes_cast_bit_for_bit():
    """Pixels: each clipped plane cast to uint8 into its channel (as before the planes were interleaved first),
    out-of-range, NaN and infinite values included, in either channel order."""
    import pytest

    rng = np.random.default_rng(9)
    out = rng.normal(0.5, 0.6, (1, 3, 320, 320)).astype(np.float32)
    out[0, :, 0, :4] = [np.nan, np.inf, -np.inf, 255.999 / 255]
    for order in ("bgr", "rgb"):
        c = Contract(channel_order=order)
        scaled = np.fmin(np.fmax(out[0] * np.float32(c.output_scale), 0.0), 255.0)
        expected = np.empty((320, 320, 3), np.uint8)
        for src, dst in enumerate([2, 1, 0] if order == "bgr" else [0, 1, 2]):
            expected[:, :, dst] = scaled[src]
        assert np.array_equal(Paster(c).to_uint8(out), expected)
    with pytest.raises(ValueError):  # a box reaching outside the frame is no silent half-paste
        Paster(Contract()).paste(np.zeros((328, 328, 3), np.uint8), np.zeros((320, 320, 3), np.uint8),
                                 np.zeros((100, 100, 3), np.uint8), (50, 50, 150, 150), np.empty((100, 100, 3), np.uint8))
