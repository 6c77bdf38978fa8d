"""Face metrics with dlib's real models (evalkit[face]) on a real photograph: scikit-image's astronaut().

The face's own landmarks are the reference: LMD of the image with itself is 0; moving the lower lip's pixels down
by 4 px (a warp of the mouth region only) moves the lower-lip points by about 4 px and leaves the eyes where they
were; the identity descriptor of the face rescaled lies close to the original's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from evalkit.metrics.face import (ALL_POINTS, EYE_POINTS, LOWER_LIP_POINTS, MOUTH_POINTS, FACE_EXTRA_HINT,
                                  descriptor_distance, face_models_missing, face_rect_from_box, landmark_distance,
                                  mouth_opening_ratio, rect_relation)

missing = face_models_missing()
needs_face = pytest.mark.skipif(missing is not None, reason=f"the face extra is not installed: {missing}")


def test_landmark_distance_hand_computed():
    a = np.zeros((2, 68, 2))
    b = a.copy()
    b[0, 48:68, 0] = 3.0  # every mouth point 3 px right
    b[0, 48:68, 1] = 4.0  # and 4 px down: 5 px away
    b[1, 0, 0] = 68.0  # one jaw point 68 px away: all-68 LMD 1, mouth LMD 0
    assert landmark_distance(a, b).tolist() == [5.0, 0.0]
    assert landmark_distance(a, b, ALL_POINTS).tolist() == pytest.approx([5.0 * 20 / 68, 1.0])
    with pytest.raises(ValueError, match="68, 2"):
        landmark_distance(np.zeros((5, 2)), np.zeros((5, 2)))


def test_mouth_opening_ratio_hand_computed():
    p = np.zeros((68, 2))
    p[48], p[54] = (0, 10), (40, 10)  # 40 px wide
    for top, bottom in ((61, 67), (62, 66), (63, 65)):
        p[top], p[bottom] = (20, 8), (20, 14)  # 6 px apart
    assert mouth_opening_ratio(p).tolist() == pytest.approx([6 / 40])


def test_rect_from_box_round_trips():
    box, rect = (100, 200, 300, 400), (90, 120, 290, 330)
    assert face_rect_from_box(box, rect_relation(box, rect)) == pytest.approx(rect)


def test_descriptor_distance_hand_computed():
    a = np.zeros((1, 128))
    b = a.copy()
    b[0, :4] = 0.5
    assert descriptor_distance(a, b).tolist() == [1.0]


@pytest.fixture(scope="module")
def astronaut():
    from evalkit.metrics.face import FaceModels

    models = FaceModels.load()
    # twice the photo's size: the face 180 px wide, as in a talking-head frame (at 90 px the predictor's integer
    # points move by less than half of a 4 px warp)
    image = cv2.resize(skimage.data.astronaut(), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    rect = models.detect(image)[0]
    return models, image, rect, models.landmarks(image, rect)


def lower_lip_moved(image: np.ndarray, points: np.ndarray, shift: float) -> np.ndarray:
    """The image with the pixels of the lower lip (below the lips' parting line, between the mouth corners, down
    past the lower lip's outline) moved down by ``shift`` px, tapering to no move over 8 px around that band."""
    h, w = image.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    parting = (points[[61, 62, 63], 1].mean() + points[[65, 66, 67], 1].mean()) / 2
    left, right, bottom = points[48, 0], points[54, 0], points[57, 1] + shift + 2
    taper = 8.0
    wx = np.clip(1 - np.maximum(left - x, x - right) / taper, 0, 1)
    wy = np.where(y < parting, 0.0, np.clip(1 - (y - bottom) / taper, 0, 1))
    dy = (shift * wx * wy).astype(np.float32)
    return cv2.remap(image, x, y - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@needs_face
def test_astronaut_landmarks_found(astronaut):
    models, image, rect, points = astronaut
    assert points.shape == (68, 2)
    left, top, right, bottom = rect[:4]
    m = 0.15 * (right - left)  # the jaw and chin reach a little past dlib's square
    inside = ((points[:, 0] > left - m) & (points[:, 0] < right + m) & (points[:, 1] > top - m)
              & (points[:, 1] < bottom + m))
    assert inside.all(), "the 68 points lie on the detected face"
    assert points[36:42, 1].mean() < points[30, 1] < points[48:68, 1].mean() < points[8, 1]  # eyes, nose, mouth, chin
    assert landmark_distance(points, models.landmarks(image, rect)).tolist() == [0.0]  # the image with itself
    assert landmark_distance(points, points, ALL_POINTS).tolist() == [0.0]


@needs_face
def test_lower_lip_warp_raises_mouth_lmd_eyes_stay(astronaut):
    models, image, rect, points = astronaut
    warped = models.landmarks(lower_lip_moved(image, points, 4.0), rect)
    moved = warped[LOWER_LIP_POINTS] - points[LOWER_LIP_POINTS]
    # abs 1.5 px: dlib fits the whole face's shape, so its lip points follow a 4 px warp only in part (2.9 px
    # measured): the band 2.5..5.5 tells 'moved about 4' from 'did not move' (0) and from twice the warp (8)
    assert moved[:, 1].mean() == pytest.approx(4.0, abs=1.5), moved  # the lower lip went down about 4 px (2.9)
    mouth = landmark_distance(points, warped)[0]
    assert 1.0 < mouth < 4.5  # 8 of the 20 mouth points moved ~4 px (1.55)
    assert landmark_distance(points, warped, EYE_POINTS)[0] < 0.5  # the eyes stayed put (0.17)
    assert landmark_distance(points, warped, MOUTH_POINTS)[0] > 3 * landmark_distance(points, warped, EYE_POINTS)[0]
    assert mouth_opening_ratio(warped)[0] > mouth_opening_ratio(points)[0]  # the mouth opened


@needs_face
def test_identity_descriptor_rescaled_self_is_close(astronaut):
    models, image, rect, points = astronaut
    own = models.descriptor(image, rect, points)
    small = cv2.resize(image, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)
    small_rect = models.detect(small)[0]
    other = models.descriptor(small, small_rect, models.landmarks(small, small_rect))
    assert descriptor_distance(own, own).tolist() == [0.0]
    assert descriptor_distance(own, other)[0] < 0.2
    # another picture entirely (scikit-image's camera man) is someone else
    camera = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    found = models.detect(camera)
    if len(found):
        stranger = models.descriptor(camera, found[0], models.landmarks(camera, found[0]))
        assert descriptor_distance(own, stranger)[0] > 0.6


@needs_face
def test_descriptors_shared_by_a_runs_processes(astronaut, tmp_path, monkeypatch):
    """``descriptor(..., shared=folder)``: the first to need one computes it and leaves its exact values in the
    folder; a process that finds it there reads them (a process that does not remember it: the memory cleared);
    a claim whose owner never delivers costs a wait, then the descriptor is computed here, the same numbers."""
    models, image, rect, points = astronaut
    monkeypatch.setattr(models, "_known", type(models._known)())
    own = models.descriptor(image, rect, points)
    models._known.clear()
    assert np.array_equal(models.descriptor(image, rect, points, shared=tmp_path), own)
    [left] = list(tmp_path.iterdir())
    assert left.suffix == ".f64" and np.array_equal(np.fromfile(left, "<f8"), own)  # no claim or partial left
    left.write_bytes(np.arange(128, dtype="<f8").tobytes())  # what another process left: read, not computed
    models._known.clear()
    assert models.descriptor(image, rect, points, shared=tmp_path).tolist() == list(range(128))
    left.unlink()
    left.with_suffix(".claim").touch()  # claimed by a process that died before it wrote the descriptor
    monkeypatch.setattr(models, "SHARED_WAIT_SECONDS", 0.1)
    models._known.clear()
    assert np.array_equal(models.descriptor(image, rect, points, shared=tmp_path), own)


@needs_face
def test_no_face_in_a_flat_picture(astronaut):
    models = astronaut[0]
    assert len(models.detect(np.full((240, 320, 3), 128, np.uint8))) == 0


def test_hint_names_the_extra():
    assert 'evalkit[face]' in FACE_EXTRA_HINT


@needs_face
def test_landmark_opening_follows_a_real_mouth_and_tracks_a_shifted_speech():
    """The real motion clip (../shared/data/real/motion): 320 px inner regions, cut at the nose, so the face
    rectangle is the default relation to the crop box (the detector sees no whole face here). The landmarks'
    opening follows the true inner-lip area (Pearson r 0.86 here); against the speech shifted by 3 frames the
    offset moves by 3. (It reads -3 where the area reads -2: one frame earlier; on faces/face1 and face4 too.)"""
    from evalkit.measure.field import sync_dict
    from evalkit.metrics.face import FaceModels
    from evalkit.metrics.sync import audio_envelope
    from evalkit.pipeline.audio import load_audio
    from tests.conftest import decode, real_file

    frames = decode(real_file("motion/face_f000-261.mp4"))
    truth = np.load(real_file("motion/mouth_opening_f000-261.npy")).astype(np.float64)
    wav = load_audio(real_file("motion/speech_f000-261.wav"), 16000)
    models = FaceModels.load()
    rect = face_rect_from_box((-4, -4, 324, 324))  # the 328 crop's box in the 320 region's pixels
    assert len(models.detect(frames[0])) == 0
    opening = np.array([mouth_opening_ratio(models.landmarks(f, rect))[0] for f in frames])
    assert np.corrcoef(opening, truth)[0, 1] > 0.8
    n = len(frames)
    offsets = []
    for k in (0, 3):
        shifted = np.concatenate([wav[k * 640:], np.zeros(k * 640, wav.dtype)])
        result = sync_dict(audio_envelope(shifted, 16000, 25.0, n), opening, 25.0, 15, n)
        assert result["reliable"], result["reason"]
        offsets.append(result["offset_frames"])
    assert offsets[1] - offsets[0] == 3
    assert offsets[0] in (-3, -2)  # the truth: -2
