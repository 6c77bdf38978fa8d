"""The suite file: YAML read once, at the edge, into typed frozen objects.

A suite names models, inputs, backends and the contract overrides. Relative
paths are relative to the suite file. Unknown keys and bad values are errors
that name the file, the field and what was expected; the rest of evalkit never
sees a dict from YAML.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)

from evalkit.config.contract import PRESETS, Contract
from evalkit.errors import UserError
from evalkit.record.vocabulary import DEFAULT_PROTOCOL, SUMMARY_COLUMNS, unknown_fields

SCHEMA_VERSION = 1


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or value.is_absolute():
        return value
    try:
        return (Path(base) / value).resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic link loop (RuntimeError before Python 3.13), a name too long
        why = "a loop of symbolic links" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40 \
            else (exc.strerror or type(exc).__name__)
        raise ValueError(f"{value} (relative to {base}): cannot be followed ({why}); fix the links or give "
                         "another path") from None


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    path = _resolve(value, info)
    if not path.is_file():
        raise ValueError(f"file not found: {path} (paths are relative to the suite file)")
    return path


def _existing_dir(value: Path, info: ValidationInfo) -> Path:
    path = _resolve(value, info)
    if not path.is_dir():
        raise ValueError(f"folder not found: {path} (paths are relative to the suite file)")
    return path


def _video_source(value: Path, info: ValidationInfo) -> Path:
    """A video file, or a folder of numbered frame images (read in numeric order at 25 fps, see dataset.py)."""
    path = _resolve(value, info)
    if path.is_dir():
        from evalkit.config.dataset import image_folder_video

        try:
            return image_folder_video(path)
        except UserError as exc:
            raise ValueError(str(exc)) from None
    if not path.is_file():
        raise ValueError(f"file not found: {path} (a video file, or a folder of frame images; paths are relative "
                         "to the suite file)")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
VideoSource = Annotated[Path, AfterValidator(_video_source)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
SuitePath = Annotated[Path, AfterValidator(_resolve)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64,
                            description="Letters, digits, '_', '.', '-' (used in folder names).")]

# allow_inf_nan=False: inf, NaN and numbers too large for a float (1e400) are errors, never values.
_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

# Upper bounds of contract numbers a suite may set: far above any real model, low enough that a
# typo (an extra zero, a unit mix-up) can't make a run take forever or allocate terabytes.
_CONTRACT_LIMITS = {
    "sample_rate": {"le": 384_000},  # the highest common audio rate
    "fps": {"le": 1000},
    "ref_level_db": {"ge": -1000, "le": 1000},
    "fmin": {"le": 192_000}, "fmax": {"le": 192_000},  # Nyquist of 384 kHz
    "n_fft": {"le": 1 << 16}, "win_length": {"le": 1 << 16}, "hop_length": {"le": 1 << 16},
    "n_mels": {"le": 4096}, "mel_window": {"le": 4096}, "feature_dim": {"le": 1 << 16},
    "crop_size": {"le": 8192}, "feature_pad_repeat": {"le": 4096},
    "feature_window_before": {"le": 4096}, "feature_window_after": {"le": 4096},
    "max_abs_value": {"le": 1e6}, "min_level_db": {"ge": -1000},
    "input_scale": {"le": 1e6}, "output_scale": {"le": 1e6},
}

# Every contract field, optional: what a suite may override; and a shipped preset (config.contract.PRESETS).
_ContractOverrides = create_model(
    "ContractOverrides",
    __config__=_FROZEN,
    preset=(Optional[Literal[tuple(PRESETS)]], Field(None, description="A shipped contract preset (the other "
                                                      "fields override its values): " + ", ".join(PRESETS))),
    audio_features=(Optional[Literal["hubert", "wenet"]], Field(None, description="The preset's audio features: "
                                                               "hubert or wenet (default: hubert).")),
    **{
        name: (Optional[field.annotation], Field(None, description=field.description, **_CONTRACT_LIMITS.get(name, {})))
        for name, field in Contract.model_fields.items()
    },
)


def _preset_by_name(value: Any) -> Any:
    """``contract: ultralight-160``: a preset named alone."""
    return {"preset": value} if isinstance(value, str) else value


# pickle finds a class by its qualified name: the model's own name, "ContractOverrides", is the annotated alias
# below, so a suite sent to a worker process (--workers) could not be pickled without this
_ContractOverrides.__qualname__ = "_ContractOverrides"
ContractOverrides = Annotated[_ContractOverrides, BeforeValidator(_preset_by_name)]


def _overrides(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(exclude_unset=True)


class ModelSpec(BaseModel):
    """A generator model and how its audio features are made."""

    model_config = _FROZEN
    name: Name
    generator: ExistingFile = Field(description="Generator ONNX file.")
    audio_encoder: Optional[ExistingFile] = Field(None, description="Audio-encoder ONNX file (mel window -> feature row).")
    audio_features: Optional[ExistingFile] = Field(
        None, description="Precomputed features (.npy, [frames, feature_dim]) instead of an encoder."
    )
    contract: ContractOverrides = Field(default_factory=_ContractOverrides,
                                        description="Contract overrides for this model (or a preset: see the suite's).")

    @model_validator(mode="after")
    def _one_feature_source(self) -> "ModelSpec":
        if (self.audio_encoder is None) == (self.audio_features is None):
            raise ValueError("give exactly one of audio_encoder (an ONNX file) or audio_features (a .npy file)")
        return self


class InputSpec(BaseModel):
    """One talking-head input: template video, driving audio, crop boxes, optional ground truth."""

    model_config = _FROZEN
    name: Name
    video: Optional[VideoSource] = Field(None, description="Template video (the frames whose mouth is re-drawn): a "
                                         "video file or a folder of frame images (numeric order, 25 fps); or give "
                                         "dataset.")
    audio: Optional[ExistingFile] = Field(None, description="Driving speech (any rate; resampled to the contract's). "
                                          "With dataset: default DIR/aud.wav.")
    crop_boxes: Optional[ExistingFile] = Field(None, description="Text file, one 'x1 y1 x2 y2' box per template frame.")
    landmarks: Optional[ExistingDir] = Field(None, description="Folder of per-frame N.lms landmark files.")
    ground_truth: Optional[VideoSource] = Field(
        None, description="Video (file or folder of frame images) the output should match (in reconstruction: the "
        "template itself). With dataset: default the dataset's frames."
    )
    dataset: Optional[ExistingDir] = Field(
        None, description="A SyncTalk_2D dataset folder instead of video, crop_boxes and landmarks: "
        "full_body_img/0.jpg ... (frames, read at 25 fps in numeric order), landmarks/0.lms ... (one per frame), "
        "aud.wav (speech). See evalkit/config/dataset.py.")

    @model_validator(mode="after")
    def _one_box_source(self) -> "InputSpec":
        if self.dataset is not None:
            return self._from_dataset()
        if self.video is None:
            raise ValueError("give video (the template video file) or dataset (a SyncTalk_2D dataset folder)")
        if self.audio is None:
            raise ValueError("give audio (the driving speech file); only a dataset input has a default (its aud.wav)")
        if (self.crop_boxes is None) == (self.landmarks is None):
            raise ValueError("give exactly one of crop_boxes (a box file) or landmarks (a folder of .lms files)")
        return self

    def _from_dataset(self) -> "InputSpec":
        """Fill video, landmarks, audio and ground truth from the dataset folder (evalkit/config/dataset.py)."""
        from evalkit.config.dataset import check_dataset

        try:
            folder = check_dataset(self.dataset)
            frames = folder.frame_list()
        except UserError as exc:
            raise ValueError(str(exc)) from None
        derived = {"video": frames, "landmarks": folder.landmarks, "crop_boxes": None}
        # A suite dumped and validated again carries the derived values: those are not a clash.
        clash = [k for k, v in derived.items() if getattr(self, k) is not None and getattr(self, k) != v]
        if clash:
            raise ValueError(f"dataset {self.dataset}: give either dataset or {' / '.join(clash)}, not both (the "
                             "dataset supplies the frames and the landmarks)")
        audio = self.audio or folder.audio
        if audio is None:
            raise ValueError(f"dataset {self.dataset}: no aud.wav (the speech of its frames); add it, or give "
                             "audio: FILE")
        # Filled in place (a frozen model is immutable after validation, not during it); the fields stay out of
        # model_fields_set, so a suite dumped with exclude_unset still says just `dataset`.
        for key, value in {"video": frames, "landmarks": folder.landmarks, "audio": audio,
                           "ground_truth": self.ground_truth or frames}.items():
            object.__setattr__(self, key, value)
        return self


MAX_THREADS = 1024
"""The most threads a session option may ask for: more than any machine evalkit runs on has cores (ONNX Runtime
would try to start them all: ``intra_op_num_threads: 1e18`` is a typo, not a machine)."""


class SessionOptions(BaseModel):
    """ONNX Runtime session options."""

    model_config = _FROZEN
    intra_op_num_threads: Optional[int] = Field(None, ge=0, le=MAX_THREADS,
                                                description="Threads inside an operator (None or 0: ORT decides; at "
                                                f"most {MAX_THREADS}).")
    inter_op_num_threads: Optional[int] = Field(None, ge=0, le=MAX_THREADS,
                                                description=f"Threads across operators (at most {MAX_THREADS}).")
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    allow_spinning: bool = Field(
        False, description="Let ONNX Runtime's pool threads spin (busy-wait) for work after each run "
        "(session.intra_op/inter_op.allow_spinning). Off by default: evalkit's own stages share the cores, and "
        "spinning threads take CPU from them (on a 2-core VM, mobile-unet's run took about 9 CPU-seconds more "
        "with spinning; see docs/speed.md).")


class BackendSpec(BaseModel):
    """Where the generator runs: an ONNX Runtime execution provider, or another implementation run as a command.

    ``kind: external`` runs ``command`` (a list of arguments; ``{request}`` is
    replaced by the path of the JSON request evalkit writes, see
    evalkit/pipeline/external.py for the interface) instead of evalkit's own pipeline.
    """

    model_config = _FROZEN
    name: Name
    kind: Literal["onnxruntime", "external"] = "onnxruntime"
    provider: str = Field("CPUExecutionProvider", description="ONNX Runtime execution provider name.")
    provider_options: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)
    session_options: SessionOptions = Field(default_factory=SessionOptions)
    command: Optional[list[str]] = Field(None, description="kind external: the program and its arguments.")
    timeout_seconds: float = Field(3600, gt=0, le=7 * 24 * 3600, description="kind external: longest a command may "
                                   "run (at most a week).")
    precision: Literal["fp32", "fp16"] = Field("fp32", description="Selects default parity tolerances.")
    batch_size: int = Field(1, ge=1, le=1024, description="Frames per inference in the streamed pass (a generator "
                            "with a dynamic batch axis; latency is still measured one frame at a time).")
    required: bool = Field(False, description="Fail the run when this provider is not available here.")
    optional: bool = Field(False, description="The provider may be one this ONNX Runtime build does not know "
                           "(e.g. from a plugin): skip it instead of rejecting its name.")

    @model_validator(mode="after")
    def _command_for_external(self) -> "BackendSpec":
        if self.kind == "external" and not self.command:
            raise ValueError("a backend of kind external needs a command (a list: program and arguments)")
        if self.kind == "onnxruntime" and self.command:
            raise ValueError("command is for kind: external; an onnxruntime backend names a provider")
        return self


class Endpoint(BaseModel):
    """One side of a parity comparison: a model on a backend."""

    model_config = _FROZEN
    model: Name
    backend: Name


class ParityPair(BaseModel):
    """An explicit comparison, e.g. a float32 model against its float16 conversion."""

    model_config = _FROZEN
    reference: Endpoint
    candidate: Endpoint
    precision: Literal["fp32", "fp16"] = Field("fp32", description="Selects the default tolerances.")
    atol: Optional[float] = Field(None, ge=0)
    rtol: Optional[float] = Field(None, ge=0)


class ParitySpec(BaseModel):
    """Tensor-level comparisons of raw outputs on identical inputs (the first ``frames`` frames)."""

    model_config = _FROZEN
    frames: int = Field(8, ge=1, le=100_000, description="Raw outputs of this many first frames are kept and compared.")
    baseline_backend: Optional[Name] = Field(
        None, description="Every other backend of a model is compared with this one (default: the first)."
    )
    pairs: list[ParityPair] = Field(default_factory=list)
    tolerances: dict[Literal["fp32", "fp16"], tuple[float, float]] = Field(
        default_factory=dict, description="(atol, rtol) per precision, replacing the defaults."
    )


class TimingSpec(BaseModel):
    """How inference latency is measured: after generation, on the first frames' real inputs."""

    model_config = _FROZEN
    # Upper bounds: timing runs after generation, once per run; an hour or a million runs is already absurd.
    warmup: int = Field(10, ge=0, le=100_000, description="Untimed-for-statistics runs before timing starts "
                        "(recorded apart).")
    min_timed_frames: int = Field(100, ge=1, le=1_000_000, description="At least this many timed runs.")
    # 0.5 s (2.0 s before issue 24): with min_timed_frames' 100 runs at the least, a fast model's figure still
    # rests on hundreds of samples (their count is recorded: timed_ms), at a quarter of the CPU a run spent on it
    min_seconds: float = Field(0.5, ge=0, le=3600, description="And at least this long (seconds, at most an hour) "
                               "of timed runs.")
    timing_inputs: int = Field(16, ge=1, le=10_000, description="How many of the first frames' inputs are cycled "
                               "through.")
    batch_sizes: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [1, 4], description="Batch sizes timed when the model's batch axis is dynamic "
        "(1 is always timed, frame by frame).")


class SyncNetSpec(BaseModel):
    """A SyncNet exported to ONNX as two streams, for LSE-D and LSE-C."""

    model_config = _FROZEN
    video_model: ExistingFile = Field(description="Video stream: [1, 3, 5, 224, 224] -> embedding.")
    audio_model: ExistingFile = Field(description="Audio stream: 13 MFCCs x 20 columns [1, 1, 13, 20] -> embedding.")
    region: Literal["mouth", "face"] = Field("mouth", description="Crop fed to the video stream: the contract's "
                                             "mouth_box, or the whole inner region.")
    channel_order: Literal["bgr", "rgb"] = "bgr"
    scale: float = Field(1.0, gt=0, description="Pixel multiplier (syncnet_python feeds 0-255).")
    vshift: int = Field(15, ge=1, le=10_000, description="Lags searched: -vshift..vshift frames.")


class NetworkMetricSpec(BaseModel):
    """FID's Inception or FVD's I3D, exported by the user to ONNX (docs/field-metrics.md); evalkit ships no weights."""

    model_config = _FROZEN
    model: ExistingFile = Field(description="The ONNX network: FID [N, 3, 299, 299] in [-1, 1] -> [N, 2048]; FVD "
                                "[N, 3, 16, 224, 224] in [-1, 1] -> [N, 400].")
    region: Literal["inner", "mouth"] = Field("inner", description="What is compared with the ground truth: the "
                                              "model's inner region, or the contract's mouth_box within it.")


class LpipsSpec(NetworkMetricSpec):
    """LPIPS: the feature network (``lpips.LPIPS(net='alex').net`` exported to ONNX) and its linear layers' weights."""

    model: ExistingFile = Field(description="The feature network: [N, 3, H, W] (after LPIPS's scaling layer) -> "
                                "its L feature maps.")
    linear: ExistingFile = Field(description="An .npz of the L linear weight vectors (lin0 ... lin4), one per map.")


class MetricsSpec(BaseModel):
    """How outputs are compared with the ground truth and the audio."""

    model_config = _FROZEN
    trim_to_shortest: bool = Field(
        False, description="Compare the first min(N) frames when the output and the ground truth differ in "
        "frame count (otherwise that is an error)."
    )
    sync_max_offset: int = Field(15, ge=1, le=10_000, description="Lags searched by the built-in sync estimator "
                                 "(frames).")
    syncnet: Optional[SyncNetSpec] = Field(None, description="A SyncNet for LSE-D / LSE-C (optional).")
    copy_psnr_db: float = Field(
        50.0, gt=0, le=200, description="Copy detection: a run whose output mouth region is, over all its frames, "
        "within this PSNR (dB) of the mouth region of the unmasked reference channels it was given is flagged as "
        "a near-copy (copy_flag 1). 50 dB is an RMS difference of 0.8 grey levels: closer than a re-drawn mouth "
        "(the drawn fixture's exact re-draw scores 46 dB, a copy inf).")
    fidelity_low_psnr_db: float = Field(
        35.0, gt=0, le=200, description="A run's verdict says \"fidelity low\" when its mean PSNR against the "
        "ground truth (the model's inner region) is below this (dB). 35 dB is an RMS difference of 4.5 grey levels: "
        "visible in a still frame (the fixtures: reference 56 dB, lag2 42 dB, noisy 30 dB, random weights 13 dB).")
    sync_tolerance_frames: int = Field(
        1, ge=0, le=100, description="A run's verdict says \"sync late\" or \"sync early\" when its reliable "
        "sync offset is further than this (frames) from the source's own offset (or from 0 without one).")
    viewer_region: Literal["face", "full"] = Field(
        "face", description="What the viewer's picture (output.mp4 decoded, against the ground truth) is measured "
        "on: the face window that the side-by-side video shows (region mp4_face: the face with a margin around "
        "every crop box of the run), or the whole frame (region mp4_full: mostly background the paste never "
        "touches, and 5x the cost at 1440x1080). PSNR is of its pixels, SSIM of its f x f block means (f = "
        "max(1, round(min(H, W) / 256)), the SSIM authors' viewing scale; run.json's viewer.ssim_scale).")
    face: bool = Field(True, description="Landmark distance (LMD), mouth opening from landmarks and identity with "
                       "dlib's models, where evalkit[face] is installed (without it the columns are absent).")
    lpips: Optional[LpipsSpec] = Field(None, description="LPIPS per frame with the user's ONNX export (optional).")
    fid: Optional[NetworkMetricSpec] = Field(None, description="FID with the user's Inception in ONNX (optional).")
    fvd: Optional[NetworkMetricSpec] = Field(None, description="FVD on 16-frame clips with the user's I3D in ONNX "
                                             "(optional).")


class GateSpec(BaseModel):
    """A pass/fail criterion on a summary.csv field: absolute (op + value) or against the baseline run.

    Examples: ``{field: psnr_mean, op: ">=", value: 30}``, ``{field: sync_offset_frames, abs: true,
    op: "<=", value: 1}``, ``{field: ssim_mean, max_drop: 0.005}``, ``{field: fps, max_drop_percent: 10}``.
    """

    model_config = _FROZEN
    name: Optional[str] = Field(None, description="Shown in reports and JUnit (default: the criterion itself).")
    field: str = Field(description="A summary.csv column, e.g. psnr_mean, ssim_min, nan_count, fps.")
    abs: bool = Field(False, description="Compare the absolute value (e.g. of a sync offset).")
    op: Optional[Literal[">=", "<=", ">", "<", "==", "!="]] = None
    value: Optional[float] = None
    max_drop: Optional[float] = Field(None, ge=0, description="vs baseline: may fall by at most this much.")
    max_drop_percent: Optional[float] = Field(None, ge=0)
    max_rise: Optional[float] = Field(None, ge=0, description="vs baseline: may rise by at most this much.")
    max_rise_percent: Optional[float] = Field(None, ge=0)
    models: Optional[list[str]] = Field(None, description="Only these models (default: all).")
    backends: Optional[list[str]] = None
    inputs: Optional[list[str]] = None
    protocols: Optional[list[str]] = Field(None, description="Only these protocols (default: all).")
    clock: Optional[Literal["cpu", "wall"]] = Field(
        None, description="Speed gates (throughput_fps, latency_*_ms): which clock's samples they judge. Default: "
        "CPU time on a CPU backend whose run recorded it (a busy machine stretches the wall clock, much less the "
        "CPU time an inference needs), wall-clock time elsewhere; \"wall\" asks for the wall clock.")

    @model_validator(mode="after")
    def _one_criterion(self) -> "GateSpec":
        relative = [x for x in (self.max_drop, self.max_drop_percent, self.max_rise, self.max_rise_percent)
                    if x is not None]
        absolute = self.op is not None or self.value is not None
        if absolute and (self.op is None or self.value is None):
            raise ValueError("an absolute gate needs both op and value")
        if absolute == bool(relative) or len(relative) > 1:
            raise ValueError("give either op and value, or exactly one of max_drop, max_drop_percent, "
                             "max_rise, max_rise_percent")
        return self


PROTOCOL_KINDS = ("reconstruction", "cross_driven")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class Mp4Spec(BaseModel):
    """How output.mp4, the video people watch, is encoded (H.264, yuv420p, with the driving audio)."""

    model_config = _FROZEN
    preset: Literal[X264_PRESETS] = Field(
        "superfast", description="x264's speed preset. superfast: at CRF 18 the same picture quality as veryfast "
        "within 0.2 dB here, at three quarters of its CPU, in a file about twice the size (docs/speed.md); "
        "slower presets give smaller files, not better pictures.")
    crf: int = Field(18, ge=0, le=51, description="x264's constant rate factor (0 lossless, 18 visually lossless, "
                     "23 x264's default).")


class ProtocolSpec(BaseModel):
    """How an input is turned into a test: what drives the model and what its output is judged against.

    - ``kind: reconstruction`` re-draws a video from its own audio and compares with its ground truth.
      ``reference: same`` feeds the unmasked reference channels from the frame being re-drawn (what the
      deployment pipeline does: a model that copies its input scores perfect PSNR here);
      ``reference: distant`` takes them from a template frame at least ``min_distance`` frames away (half
      the template away, as the model family is trained), so a model that copies draws the wrong mouth.
    - ``kind: cross_driven`` (dubbing) drives one input's template video with other speech: ``audio`` (a
      file) or ``audio_from`` (another input's audio). No ground truth: judged by sync against the
      driving audio and by no-reference measures of the mouth region.
    """

    model_config = _FROZEN
    name: Name = Field(description="Shown in every output row (summary.csv column 'protocol') and folder name.")
    kind: Literal["reconstruction", "cross_driven"] = DEFAULT_PROTOCOL
    reference: Literal["same", "distant"] = Field(
        "same", description="reconstruction: where the unmasked reference channels come from.")
    min_distance: int = Field(25, ge=1, le=100000, description="reference distant: frames between the reference "
                              "frame and the frame re-drawn, at least (the template must be longer than twice this).")
    audio: Optional[ExistingFile] = Field(None, description="cross_driven: the driving speech file.")
    audio_from: Optional[Name] = Field(None, description="cross_driven: drive with this other input's audio.")

    @model_validator(mode="after")
    def _consistent(self) -> "ProtocolSpec":
        if self.kind == "cross_driven":
            if (self.audio is None) == (self.audio_from is None):
                raise ValueError("a cross_driven protocol needs exactly one of audio (a file) or audio_from "
                                 "(an input name)")
            if self.reference != "same":
                raise ValueError("reference: distant is for kind reconstruction")
        elif self.audio is not None or self.audio_from is not None:
            raise ValueError("audio and audio_from are for kind cross_driven; reconstruction uses the input's audio")
        return self


def _default_protocols() -> list["ProtocolSpec"]:
    return [ProtocolSpec(name=DEFAULT_PROTOCOL)]


class Suite(BaseModel):
    """A declarative evaluation: every model x backend x input is generated and measured."""

    model_config = _FROZEN
    name: Name
    description: str = ""
    output_dir: Optional[SuitePath] = Field(None, description="Where runs land (default: reports/ in the working directory).")
    store_full_frames: bool = Field(False, description="Also keep every generated full frame losslessly "
                                    "(frames_full.mkv, about 20x the inner frames' size). Off: a full frame is the "
                                    "template plus the pasted inner region, recomputed where needed.")
    contract: ContractOverrides = Field(default_factory=_ContractOverrides, description="Contract overrides for all "
                                        "models: fields of the contract, or a shipped preset (contract: "
                                        "ultralight-160, or {preset: ultralight-160, audio_features: wenet}).")
    models: list[ModelSpec] = Field(min_length=1)
    inputs: list[InputSpec] = Field(min_length=1)
    backends: list[BackendSpec] = Field(
        default_factory=lambda: [BackendSpec(name="cpu")], min_length=1, description="Default: one CPU backend."
    )
    timing: TimingSpec = Field(default_factory=TimingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    mp4: Mp4Spec = Field(default_factory=Mp4Spec, description="How output.mp4 is encoded (its x264 preset and CRF).")
    parity: ParitySpec = Field(default_factory=ParitySpec)
    golden: Optional[ExistingDir] = Field(None, description="A folder saved by `evalkit run --save-golden`: "
                                          "every run's raw outputs are compared with it.")
    protocols: list[ProtocolSpec] = Field(
        default_factory=_default_protocols, min_length=1,
        description="Evaluation protocols, each run for every model x backend x input (default: one "
        "'reconstruction' with reference 'same').")
    gates: list[GateSpec] = Field(default_factory=list, description="Pass/fail criteria; any failure exits 1.")
    baseline: Optional[str] = Field(None, description="Baseline for relative gates: a folder made by `evalkit "
                                    "baseline set` (relative to the suite file), or a name under ./baselines/.")

    @model_validator(mode="after")
    def _unique_names_and_contracts(self) -> "Suite":
        for group in ("models", "inputs", "backends", "protocols"):
            names = [item.name for item in getattr(self, group)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{group}: names must be unique, repeated: {dupes}")
        models, backends = {m.name for m in self.models}, {b.name for b in self.backends}
        for pair in self.parity.pairs:
            for side in (pair.reference, pair.candidate):
                if side.model not in models or side.backend not in backends:
                    raise ValueError(f"parity pair names {side.model} on {side.backend}; models are {sorted(models)}, "
                                     f"backends {sorted(backends)}")
        inputs = {i.name for i in self.inputs}
        for protocol in self.protocols:
            if protocol.audio_from is not None and protocol.audio_from not in inputs:
                raise ValueError(f"protocol {protocol.name!r}: audio_from {protocol.audio_from!r} is not one of "
                                 f"the inputs {sorted(inputs)}")
        if self.parity.baseline_backend is not None and self.parity.baseline_backend not in backends:
            raise ValueError(f"parity.baseline_backend {self.parity.baseline_backend!r} is not one of {sorted(backends)}")
        for model in self.models:
            try:
                self.contract_for(model)
            except ValidationError as exc:
                raise ValueError(f"model '{model.name}': contract: {_first_message(exc)}") from None
        return self

    def contract_for(self, model: ModelSpec) -> Contract:
        """The contract a model runs under: defaults, then suite overrides, then the model's."""
        return Contract().with_overrides({**_overrides(self.contract), **_overrides(model.contract)})


class LoadedSuite(BaseModel):
    """A suite with where it came from."""

    model_config = ConfigDict(frozen=True)
    suite: Suite
    path: Path
    sha256: str
    text: str


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic class whose field list applies at ``loc`` (for 'valid keys' hints)."""
    cls: Any = Suite
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        ann = cls.model_fields[part].annotation
        while get_origin(ann) in (list, Union, Optional) or str(get_origin(ann)) == "typing.Union":
            args = [a for a in get_args(ann) if a is not type(None)]
            ann = args[0] if args else ann
        cls = ann
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _first_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{_loc(err['loc'])}: {err['msg']}"


class SuiteError(UserError):
    """One or more problems of a suite file; ``problems`` holds every one (each a line naming the file)."""

    def __init__(self, problems: list[str]):
        self.problems = [_one_line(p) for p in problems]
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more error{'s' if more > 1 else ''}; "
                                             "`evalkit suite check` lists them all)" if more else ""))


def _one_line(text: str) -> str:
    """A message for one stderr line: line breaks (from YAML marks, odd keys) become spaces."""
    return " ".join(str(text).split())


def _describe_error(err: dict) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = ", ".join(parent.model_fields) if parent else "see `evalkit suite schema`"
        return f"{_loc(loc)}: unknown key '{loc[-1]}' (valid keys: {valid})"
    if err["type"] == "missing":
        return f"{_loc(loc)}: required field is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "finite_number":
        msg += " (inf, NaN and numbers beyond a float's range, e.g. 1e400, are not allowed)"
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {_short_repr(got)})"
    return f"{_loc(loc)}: {msg}{shown}"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_problems(exc: ValidationError) -> list[str]:
    """Every error of ``exc``, one line each (with the valid keys for an unknown key)."""
    return [_one_line(_describe_error(err)) for err in exc.errors()]


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first error (with the valid keys for an unknown key), and how many more there are."""
    problems = validation_problems(exc)
    text = problems[0]
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more error{'s' if len(problems) > 2 else ''})"
    return text


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is recorded (a later ``gates: []`` would
    silently erase the gates above it)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    self.duplicates.append(f"line {line}: duplicate key {_short_repr(key)} (first given on line "
                                           f"{seen}; give each key once)")
                else:
                    first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(path: Path, text: str) -> Any:
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # its reader already rejects control characters
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        if isinstance(exc, yaml.reader.ReaderError):
            where = f":{text[: exc.position].count(chr(10)) + 1}"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise SuiteError([f"{path}{where}: not valid YAML: {problem}"]) from None
    except RecursionError:
        raise SuiteError([f"{path}: not a usable suite: nested too deeply"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        raise SuiteError([f"{path}: {d}" for d in loader.duplicates])
    return data


def _known_names(suite: Suite, group: str) -> set[str] | None:
    items = getattr(suite, group, None)
    if items is None:
        return None
    return {str(getattr(item, "name", item)) for item in items}


def cross_check(suite: Suite) -> list[str]:
    """What the field types can't see: gate fields and filters, ONNX Runtime provider names."""
    problems = []
    for i, gate in enumerate(suite.gates):
        if unknown_fields([gate]):  # old speed names (fps, ...) count as known
            close = difflib.get_close_matches(gate.field, SUMMARY_COLUMNS, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            problems.append(f"gates[{i}].field: unknown field '{gate.field}' ({hint}a gate names a summary.csv "
                            "column, e.g. psnr_mean, ssim_min, sync_offset_frames, nan_count, fps)")
        for attr in ("models", "backends", "inputs", "protocols"):
            wanted = getattr(gate, attr, None)
            known = _known_names(suite, attr)
            if wanted is None or known is None:
                continue
            unknown = [w for w in wanted if str(w) not in known]
            if unknown:
                problems.append(f"gates[{i}].{attr}: {', '.join(map(repr, unknown))} match no {attr[:-1]} of the "
                                f"suite (its {attr}: {', '.join(sorted(known)) or 'none'})")
    problems += _provider_problems(suite)
    return problems


def _provider_problems(suite: Suite) -> list[str]:
    wanted = [(i, b) for i, b in enumerate(suite.backends) if b.kind == "onnxruntime" and not b.optional]
    if not wanted:
        return []
    import onnxruntime as ort

    known = list(ort.get_all_providers())
    problems = []
    for i, backend in wanted:
        if backend.provider not in known:
            close = difflib.get_close_matches(backend.provider, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            problems.append(f"backends[{i}].provider: unknown ONNX Runtime provider '{backend.provider}' ({hint}"
                            f"known: {', '.join(known)}; set `optional: true` on the backend to skip a provider "
                            "this build doesn't know)")
    return problems


def _suite_text(path: Path) -> str:
    """The suite file as text: it must be UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError([f"{path}: cannot read the suite file: {exc.strerror or exc}"]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError([f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "save the suite as UTF-8"]) from None


def load_suite(path: Path) -> LoadedSuite:
    """Read and validate a suite file; every problem is a UserError naming the file and field.

    The error is a SuiteError: its message is the first problem (one line), ``problems`` all of them.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError([f"suite file not found: {path}" + (" (a folder, not a file)" if path.is_dir() else "")])
    text = _suite_text(path)
    data = _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SuiteError([f"{path}: expected a mapping of suite fields (name, models, inputs, ...) at the top level"])
    try:
        suite = Suite.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise SuiteError([f"{path}: {p}" for p in validation_problems(exc)]) from None
    except RecursionError:
        raise SuiteError([f"{path}: not a usable suite: nested too deeply"]) from None
    problems = cross_check(suite)
    if problems:
        raise SuiteError([f"{path}: {p}" for p in problems])
    return LoadedSuite(suite=suite, path=path.resolve(), sha256=hashlib.sha256(text.encode()).hexdigest(), text=text)


def suite_json_schema() -> str:
    """JSON Schema of the suite format, for editor completion."""
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "evalkit suite"
    return json.dumps(schema, indent=2)
