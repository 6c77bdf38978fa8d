"""The model contract: every number of the reference pipeline, as data.

The defaults are those of the SyncTalk_2D / Ultralight-Digital-Human "328 /
ave" reference pipeline (../shared/CONTRACT.md). A suite overrides any field,
globally (``contract:`` at the top) or per model (``models[i].contract``).
No stage of evalkit hard-codes one of these numbers: each stage takes the
contract and reads what it needs.

Boxes are ``[x1, y1, x2, y2]`` in pixels, half-open: x1 <= x < x2 and
y1 <= y < y2 (the reference's ``cv2.rectangle(img, (5, 5, 310, 305), ...)``
fills x 5..314 and y 5..309, which is ``[5, 5, 315, 310]`` here).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Box = tuple[int, int, int, int]


class Contract(BaseModel):
    """What a generator model expects and how the pipeline feeds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- audio -----------------------------------------------------------
    sample_rate: int = Field(16000, gt=0, description="Audio is resampled to this rate (Hz), mono.")
    preemphasis: float = Field(0.97, ge=0, lt=1, description="Pre-emphasis coefficient k: y[n] = x[n] - k x[n-1].")
    n_fft: int = Field(800, gt=0, description="STFT size (samples).")
    win_length: int = Field(800, gt=0, description="STFT window length (samples), Hann.")
    hop_length: int = Field(200, gt=0, description="STFT hop (samples); sample_rate / hop_length mel frames per second.")
    n_mels: int = Field(80, gt=0, description="Mel bands (librosa Slaney filters).")
    fmin: float = Field(55.0, ge=0, description="Lowest mel frequency (Hz).")
    fmax: float = Field(7600.0, gt=0, description="Highest mel frequency (Hz).")
    min_amplitude: float = Field(1e-5, gt=0, description="Floor before 20*log10.")
    ref_level_db: float = Field(20.0, description="Subtracted after amplitude-to-dB.")
    min_level_db: float = Field(-100.0, lt=0, description="dB value mapped to -max_abs_value.")
    max_abs_value: float = Field(4.0, gt=0, description="Normalised mel lies in [-max_abs_value, max_abs_value].")
    mel_window: int = Field(16, gt=0, description="Mel frames in the window for one video frame.")
    feature_dim: int = Field(512, gt=0, description="Width of the audio encoder's output row.")
    feature_pad_repeat: int = Field(
        1, ge=0, description="Times the first and last feature rows are repeated at each end (reference: once)."
    )
    feature_window_before: int = Field(8, ge=0, description="Feature rows before the frame's own row.")
    feature_window_after: int = Field(7, ge=0, description="Feature rows after the frame's own row.")
    audio_input_shape: tuple[int, ...] = Field(
        (32, 16, 16),
        description="Shape (without the batch axis) the feature window is reshaped to "
        "(ave: [32,16,16]; hubert: [32,32,32]; wenet: [256,16,32]).",
    )

    # --- video -----------------------------------------------------------
    landmark_left: int = Field(1, ge=0, description="Crop box from landmarks: x1 is this landmark's x.")
    landmark_right: int = Field(31, ge=0, description="... x2 is this landmark's x.")
    landmark_top: int = Field(52, ge=0, description="... y1 is this landmark's y; the box is as tall as wide.")
    fps: float = Field(25.0, gt=0, description="Video frame rate the model is driven at.")
    crop_size: int = Field(328, gt=0, description="Face crops are resized to crop_size x crop_size (bicubic).")
    inner_box: Box = Field((4, 4, 324, 324), description="The region of the crop the model sees, [x1,y1,x2,y2].")
    mask_box: Box = Field(
        (5, 5, 315, 310), description="Rectangle of the inner region blacked out in the masked copy, [x1,y1,x2,y2]."
    )
    mouth_box: Box = Field(
        (22, 86, 269, 192),
        description="Mouth region in inner-region pixels, for mouth fidelity and sync "
        "(default: x 7-84 %, y 27-60 % of 320, where real lips stayed).",
    )
    channel_order: Literal["bgr", "rgb"] = Field(
        "bgr", description="Channel order the model was trained on (the reference reads BGR with OpenCV)."
    )
    resize_interpolation: Literal["bicubic", "bilinear", "area", "nearest"] = Field(
        "bicubic", description="Interpolation for crop resizes (OpenCV's, as the reference)."
    )
    input_scale: float = Field(1 / 255, gt=0, description="uint8 pixel -> model input multiplier.")
    output_scale: float = Field(255.0, gt=0, description="Model output -> pixel multiplier, then clipped and truncated to uint8.")

    # --- reproducing the reference inference script exactly ----------------
    # The SyncTalk_2D inference script differs from the contract above in three
    # ways; each is an option here (defaults: the contract) so that a user can
    # get their repository's video frame for frame.
    template_start: int = Field(
        0, ge=0, description="Output frame i shows template frame ping_pong(i + template_start). The SyncTalk_2D "
        "inference script starts its walk at frame 1 (it steps before reading): set 1 to match it.")
    frame_count: Literal["contract", "padded_features"] = Field(
        "contract", description="How many frames are generated: 'contract' = as many as the audio drives "
        "(int((mel_frames - 16) / 80 * 25) + 2); 'padded_features' = one per row of the end-padded feature "
        "matrix (2 * feature_pad_repeat more), as the SyncTalk_2D script loops.")
    output_cast: Literal["clip", "wrap"] = Field(
        "clip", description="Model output -> uint8: 'clip' to [0, 255] then truncate (evalkit's default); 'wrap' "
        "truncates and wraps modulo 256 as the reference's np.array(pred * 255, dtype=np.uint8) does on x86 "
        "(256 -> 0, -1 -> 255).")

    # --- model I/O names (None: found by shape) ---------------------------
    image_input: str | None = Field(None, description="Name of the 6-channel image input; None finds it by shape.")
    audio_input: str | None = Field(None, description="Name of the audio input; None finds it by shape.")

    @model_validator(mode="after")
    def _consistent(self) -> "Contract":
        rows = self.feature_window_rows
        if math.prod(self.audio_input_shape) != rows * self.feature_dim:
            raise ValueError(
                f"audio_input_shape {list(self.audio_input_shape)} holds {math.prod(self.audio_input_shape)} values, "
                f"but a feature window holds {rows} rows x {self.feature_dim} = {rows * self.feature_dim}"
            )
        for name in ("inner_box", "mask_box", "mouth_box"):
            x1, y1, x2, y2 = getattr(self, name)
            if not (x1 < x2 and y1 < y2 and x1 >= 0 and y1 >= 0):
                raise ValueError(f"{name} {[x1, y1, x2, y2]} is not a box [x1, y1, x2, y2] with x1 < x2, y1 < y2")
        ix1, iy1, ix2, iy2 = self.inner_box
        if ix2 > self.crop_size or iy2 > self.crop_size:
            raise ValueError(f"inner_box {list(self.inner_box)} does not fit in crop_size {self.crop_size}")
        for name in ("mask_box", "mouth_box"):
            x1, y1, x2, y2 = getattr(self, name)
            if x2 > self.inner_width or y2 > self.inner_height:
                raise ValueError(
                    f"{name} {[x1, y1, x2, y2]} does not fit in the inner region "
                    f"{self.inner_width}x{self.inner_height}"
                )
        if self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax {self.fmax} is above the Nyquist frequency {self.sample_rate / 2}")
        return self

    # --- derived values (never stored twice) ------------------------------
    @property
    def mel_fps(self) -> float:
        """Mel frames per second (80 with the defaults)."""
        return self.sample_rate / self.hop_length

    @property
    def feature_window_rows(self) -> int:
        """Rows in one generator audio window (16 with the defaults)."""
        return self.feature_window_before + 1 + self.feature_window_after

    @property
    def inner_width(self) -> int:
        return self.inner_box[2] - self.inner_box[0]

    @property
    def inner_height(self) -> int:
        return self.inner_box[3] - self.inner_box[1]

    @property
    def image_input_shape(self) -> tuple[int, int, int, int]:
        """[1, 6, H, W] of the generator's image input."""
        return (1, 6, self.inner_height, self.inner_width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """[1, 3, H, W] of the generator's output."""
        return (1, 3, self.inner_height, self.inner_width)

    def with_overrides(self, overrides: dict | None) -> "Contract":
        """A new contract with ``overrides`` applied and re-validated (a ``preset`` among them first: see
        ``PRESETS``)."""
        if not overrides:
            return self
        return Contract.model_validate({**self.model_dump(), **expand_preset(overrides)})


# --- shipped presets: other members of the family, as their inference code runs them ----------------------------

_ULTRALIGHT_160 = {
    # Ultralight-Digital-Human's inference script: the box from landmarks 1, 31, 52 as above, resized to 168 x 168
    # (its cv2.resize(crop, (168, 168), cv2.INTER_AREA) passes INTER_AREA as dst, so the resize is bilinear, and so
    # is the resize back), the model sees [4:164, 4:164], cv2.rectangle(img, (5, 5, 150, 145), ...) blacks out x 5..154,
    # y 5..149; BGR / 255 in, x 255 out; the audio window is rows i - 4 .. i + 3 of the feature matrix with zero rows
    # past either end (no repeated end rows).
    "crop_size": 168, "inner_box": (4, 4, 164, 164), "mask_box": (5, 5, 155, 150),
    "mouth_box": (11, 43, 134, 96),  # the 320 px default's x 7-84 %, y 27-60 %, at 160 px
    "resize_interpolation": "bilinear", "channel_order": "bgr",
    "feature_window_before": 4, "feature_window_after": 3, "feature_pad_repeat": 0,
}
PRESETS: dict[str, dict[str, dict]] = {
    "ultralight-160": {
        # HuBERT: 1024-d rows at 50 Hz taken in pairs (2 x 1024 a video frame at 25 fps): 8 rows -> [16, 32, 32]
        "hubert": {**_ULTRALIGHT_160, "fps": 25.0, "feature_dim": 2048, "audio_input_shape": (16, 32, 32)},
        # WeNet: an 8192-value row (16 x 512) a video frame at 20 fps: 8 rows -> [128, 16, 32]
        "wenet": {**_ULTRALIGHT_160, "fps": 20.0, "feature_dim": 8192, "audio_input_shape": (128, 16, 32)},
    },
}
"""Contract presets a suite names with ``contract: {preset: NAME, audio_features: KIND}`` (or ``contract: NAME``:
the first kind). The family's 160 px models take their audio features precomputed (HuBERT or WeNet, not mels):
give them as a model's ``audio_features`` .npy, [frames, feature_dim]."""


def expand_preset(overrides: dict) -> dict:
    """Contract overrides with ``preset`` (and ``audio_features``) replaced by the preset's fields; the other
    overrides win over the preset's."""
    if not overrides or ("preset" not in overrides and "audio_features" not in overrides):
        return dict(overrides or {})
    rest = dict(overrides)
    name, kind = rest.pop("preset", None), rest.pop("audio_features", None)
    if name is None:
        raise ValueError(f"audio_features: {kind!r} chooses among a preset's audio features: name the preset too "
                         f"(preset: {' | '.join(PRESETS)})")
    if name not in PRESETS:
        raise ValueError(f"preset: {name!r} is not a shipped contract preset ({', '.join(PRESETS)})")
    kinds = PRESETS[name]
    kind = kind or next(iter(kinds))
    if kind not in kinds:
        raise ValueError(f"audio_features: {kind!r} is not one of preset {name}'s ({', '.join(kinds)})")
    return {**kinds[kind], **rest}


def preset_for(image_shape, audio_shape) -> str | None:
    """The preset (as a suite writes it) whose image and audio inputs have these shapes (batch axis included, any
    dimension may be a name or None), or None."""
    def fits(actual, expected) -> bool:
        return len(actual) == len(expected) and all(not isinstance(a, int) or a == e
                                                    for a, e in zip(actual[1:], expected[1:]))

    for name, kinds in PRESETS.items():
        for kind, fields in kinds.items():
            contract = Contract().with_overrides(fields)
            if fits(list(image_shape), contract.image_input_shape) and (
                    audio_shape is None or fits(list(audio_shape), (1, *contract.audio_input_shape))):
                return f"contract: {{preset: {name}, audio_features: {kind}}}"
    return None
