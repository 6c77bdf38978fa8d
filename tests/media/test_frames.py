"""Frame helpers (evalkit.media.frames): the face window of a side-by-side video."""

from __future__ import annotations

import numpy as np

from evalkit.media.frames import face_window


def test_face_window_holds_every_box_with_a_margin_and_even_sides():
    # union x 166..464, y 171..464 (298 x 293); margin 0.15 x 298 = 44.7 on every side, clipped at the bottom
    boxes = np.array([[176, 176, 464, 464], [166, 171, 454, 459]])
    assert face_window(boxes, 640, 480) == (121, 126, 509, 480)
    assert face_window(boxes, 640, 480, margin=0) == (166, 171, 464, 465)  # odd height 293: grown by one
    # odd sides at the frame's edges: grown where there is room, else shrunk
    assert face_window(np.array([[0, 0, 9, 7]]), 9, 7, margin=0) == (0, 0, 8, 6)
    assert face_window(np.array([[1, 2, 10, 9]]), 10, 9, margin=0) == (0, 1, 10, 9)
    assert face_window(np.array([[-50, -50, 700, 500]]), 640, 480) == (0, 0, 640, 480)  # clipped to the frame
    assert face_window(np.zeros((0, 4)), 64, 48) == (0, 0, 64, 48)  # no box: the frame
