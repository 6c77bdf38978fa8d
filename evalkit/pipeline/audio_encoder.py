"""Stage 3: mel windows -> audio feature matrix [frames, feature_dim].

Either an audio-encoder ONNX model (mel window [1, 1, n_mels, mel_window] in,
[1, feature_dim] out), run with ONNX Runtime on the CPU, or features computed
elsewhere and saved as .npy of shape [frames, feature_dim].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.errors import UserError

NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)


def check_audio_encoder(encoder_path: Path, contract: Contract, session=None):
    """The audio encoder loads and fits the contract: one input taking a [1, 1, n_mels, mel_window] window, one
    output of feature_dim values (run once on a silent window when its shape is not declared); returns the
    session. UserError (exit 2) naming the file and what was expected otherwise: preflight's check."""
    import onnxruntime as ort

    if session is None:
        try:
            session = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for a file that is not a model
            why = " ".join(str(exc).split())[:200]
            raise UserError(f"cannot load audio encoder {encoder_path}: {why} (expected an ONNX model)") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = [1, 1, contract.n_mels, contract.mel_window]
    if len(inputs) != 1:
        raise UserError(f"audio encoder {encoder_path}: {len(inputs)} inputs "
                        f"({', '.join(i.name for i in inputs)}), expected 1 (a mel window of shape {expected})")
    _check_shape(f"audio encoder {encoder_path}: input '{inputs[0].name}'", inputs[0].shape, expected)
    if inputs[0].type != "tensor(float)":
        raise UserError(f"audio encoder {encoder_path}: input '{inputs[0].name}' is {inputs[0].type}, expected "
                        "tensor(float) (export the encoder with float32 inputs)")
    declared = outputs[0].shape if outputs else []
    if all(isinstance(d, int) for d in declared):
        size = int(np.prod(declared)) if declared else 1
    else:  # symbolic: ask the model
        try:
            size = session.run(None, {inputs[0].name: np.zeros(expected, np.float32)})[0].size
        except Exception as exc:
            why = " ".join(str(exc).split())[:200]
            raise UserError(f"audio encoder {encoder_path}: fails on a mel window of shape {expected}: {why}") \
                from None
    if size != contract.feature_dim:
        raise UserError(f"audio encoder {encoder_path}: output '{outputs[0].name}' has {size} values per window "
                        f"(shape {list(declared)}), the contract's feature_dim is {contract.feature_dim} (set "
                        "contract.feature_dim, or export the encoder that goes with this generator)")
    return session


def encode_mel_windows(encoder_path: Path, windows, contract: Contract, out: np.ndarray | None = None) -> np.ndarray:
    """Run the encoder on every window ([frames, n_mels, mel_window]: an array or ``mel.MelWindows``); returns
    [frames, feature_dim] float32, written into ``out`` when given (e.g. the middle of a padded matrix)."""
    session = check_audio_encoder(encoder_path, contract)
    inputs = session.get_inputs()
    expected = [1, 1, contract.n_mels, contract.mel_window]
    name = inputs[0].name
    rows = np.empty((len(windows), contract.feature_dim), dtype=np.float32) if out is None else out
    batch = np.empty(expected, dtype=np.float32)
    for i, window in enumerate(windows):
        batch[0, 0] = window
        out = session.run(None, {name: batch})[0]
        if out.size != contract.feature_dim:
            raise UserError(
                f"audio encoder {encoder_path}: output has {out.size} values per window, "
                f"the contract's feature_dim is {contract.feature_dim}"
            )
        rows[i] = out.reshape(-1)
    return rows


def load_features(path: Path, frames: int, contract: Contract) -> np.ndarray:
    """Precomputed features from ``path`` (.npy, [frames, feature_dim], or [frames, ...] holding feature_dim values a
    row), checked against the audio."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise UserError(f"cannot read audio features {path}: {exc.strerror} (expected a .npy array)") from None
    if magic != NPY_MAGIC:  # numpy would try it as a pickle and advise allow_pickle: never for features
        raise UserError(f"audio features {path}: not a .npy array file (no NumPy header); save the features with "
                        "numpy.save(path, array)")
    try:
        features = np.load(path)
    except Exception as exc:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UserError(f"audio features {path}: a damaged .npy file ({why}); save the features again with "
                        "numpy.save(path, array)") from None
    if not np.issubdtype(features.dtype, np.number):
        raise UserError(f"audio features {path}: an array of {features.dtype}, expected numbers (float32)")
    if features.ndim > 2:  # rows of several values, e.g. HuBERT pairs [frames, 2, 1024] (the 160 px family's files)
        features = features.reshape(len(features), -1)
    if features.ndim != 2 or features.shape[1] != contract.feature_dim:
        raise UserError(
            f"audio features {path}: shape {list(features.shape)}, expected [frames, {contract.feature_dim}]"
        )
    if features.shape[0] != frames:
        raise UserError(
            f"audio features {path}: {features.shape[0]} rows, but the audio drives {frames} video frames"
        )
    return features.astype(np.float32, copy=False)


def padded_rows(frames: int, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """(padded, rows): an empty [frames + 2 * feature_pad_repeat, feature_dim] matrix and the view of its
    middle rows; fill ``rows``, then ``fill_feature_ends(padded, contract)`` (no second copy of the features)."""
    r = contract.feature_pad_repeat
    padded = np.empty((frames + 2 * r, contract.feature_dim), np.float32)
    return padded, padded[r : r + frames]


def fill_feature_ends(padded: np.ndarray, contract: Contract) -> np.ndarray:
    """The first and last ``feature_pad_repeat`` rows of ``padded`` set to its first and last middle rows."""
    r = contract.feature_pad_repeat
    if r:
        padded[:r] = padded[r]
        padded[-r:] = padded[-r - 1]
    return padded


def pad_feature_ends(features: np.ndarray, contract: Contract) -> np.ndarray:
    """Repeat the first and last rows ``feature_pad_repeat`` times at each end (the reference does it once)."""
    r = contract.feature_pad_repeat
    if r == 0:
        return features
    return np.concatenate([np.repeat(features[:1], r, axis=0), features, np.repeat(features[-1:], r, axis=0)])


def _check_shape(what: str, actual: list, expected: list[int]) -> None:
    """Raise when a model's declared shape cannot take ``expected``; symbolic dims accept anything."""
    ok = len(actual) == len(expected) and all(
        not isinstance(a, int) or a == e for a, e in zip(actual, expected)
    )
    if not ok:
        raise UserError(f"{what} has shape {list(actual)}, the contract expects {expected}")
