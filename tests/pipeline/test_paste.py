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
