"""Feature-window alignment (CONTRACT.md: rows i-8 .. i+7 of the end-padded matrix, zeros past the ends)."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.pipeline.audio_encoder import pad_feature_ends
from evalkit.config.contract import Contract
from evalkit.pipeline.feature_windows import feature_window
from evalkit.pipeline.generate import compute_audio_features


def constant_rows(n: int, dim: int = 512) -> np.ndarray:
    """Row i holds the constant i + 1 (so that a zero row is padding, never data)."""
    return np.repeat(np.arange(1, n + 1, dtype=np.float32)[:, None], dim, axis=1)


def window_rows(window: np.ndarray, contract: Contract) -> np.ndarray:
    rows = window.reshape(contract.feature_window_rows, contract.feature_dim)
    assert (rows == rows[:, :1]).all(), "each row of the window is one feature row"
    return rows[:, 0]


@pytest.mark.parametrize("frame", [0, 1, 5, 8, 9, 20, 36, 39])
def test_window_holds_rows_i_minus_8_to_i_plus_7(frame):
    c = Contract()
    features = constant_rows(40)
    got = window_rows(feature_window(features, frame, c), c)
    want = np.array([r + 1 if 0 <= r < 40 else 0 for r in range(frame - 8, frame + 8)], dtype=np.float32)
    assert (got == want).all()


def test_window_is_reshaped_row_major_to_the_contract_shape():
    c = Contract()
    window = feature_window(constant_rows(40), 20, c)
    assert window.shape == (1, 32, 16, 16)
    assert (window[0, 0] == 13).all() and (window[0, 1] == 13).all()  # row 12 -> values 13, channels 0 and 1
    other = Contract(audio_input_shape=(16, 32, 16))
    assert feature_window(constant_rows(40), 20, other).shape == (1, 16, 32, 16)


def test_ends_repeat_first_and_last_row_once():
    padded = pad_feature_ends(constant_rows(5), Contract())
    assert padded[:, 0].tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert pad_feature_ends(constant_rows(5), Contract(feature_pad_repeat=0)).shape[0] == 5


def test_generator_input_for_frame_i_through_the_audio_path(fixtures_dir, tmp_path):
    """Precomputed features (.npy) whose row i is i + 1: the generator's input for frame i."""
    c = Contract()
    wav = fixtures_dir / "clip" / "speech.wav"
    frames = compute_audio_features(wav, fixtures_dir / "models" / "audio_encoder.onnx", None, c).frames
    npy = tmp_path / "features.npy"
    np.save(npy, constant_rows(frames))
    audio = compute_audio_features(wav, None, npy, c)
    assert audio.frames == frames
    for i in (0, 7, 100, frames - 1):
        got = window_rows(feature_window(audio.features, i, c), c)
        # padded row r holds feature row r - 1 (clamped to the ends); outside the padded matrix: zero
        want = [min(max(r - 1, 0), frames - 1) + 1 if 0 <= r < frames + 2 else 0 for r in range(i - 8, i + 8)]
        assert got.tolist() == want
