"""The suite file: YAML read once, at the edge, into typed frozen objects.

A suite names models, inputs, backends and the contract overrides. Relative
paths are relative to the suite file. Unknown keys and bad values are errors
that name the file, the field and what was expected; the rest of evalkit never
sees a dict from YAML.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)

from evalkit.contract import Contract
from evalkit.errors import UserError

SCHEMA_VERSION = 1


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return (Path(base) / value).resolve() if base is not None and not value.is_absolute() else value


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


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
SuitePath = Annotated[Path, AfterValidator(_resolve)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64,
                            description="Letters, digits, '_', '.', '-' (used in folder names).")]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Every contract field, optional: what a suite may override.
ContractOverrides = create_model(
    "ContractOverrides",
    __config__=_FROZEN,
    **{
        name: (Optional[field.annotation], Field(None, description=field.description))
        for name, field in Contract.model_fields.items()
    },
)


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
    contract: ContractOverrides = Field(default_factory=ContractOverrides, description="Contract overrides for this model.")

    @model_validator(mode="after")
    def _one_feature_source(self) -> "ModelSpec":
        if (self.audio_encoder is None) == (self.audio_features is None):
            raise ValueError("give exactly one of audio_encoder (an ONNX file) or audio_features (a .npy file)")
        return self


class InputSpec(BaseModel):
    """One talking-head input: template video, driving audio, crop boxes, optional ground truth."""

    model_config = _FROZEN
    name: Name
    video: ExistingFile = Field(description="Template video (the frames whose mouth is re-drawn).")
    audio: ExistingFile = Field(description="Driving speech (any rate; resampled to the contract's).")
    crop_boxes: Optional[ExistingFile] = Field(None, description="Text file, one 'x1 y1 x2 y2' box per template frame.")
    landmarks: Optional[ExistingDir] = Field(None, description="Folder of per-frame N.lms landmark files.")
    ground_truth: Optional[ExistingFile] = Field(
        None, description="Video the output should match (in reconstruction: the template itself)."
    )

    @model_validator(mode="after")
    def _one_box_source(self) -> "InputSpec":
        if (self.crop_boxes is None) == (self.landmarks is None):
            raise ValueError("give exactly one of crop_boxes (a box file) or landmarks (a folder of .lms files)")
        return self


class SessionOptions(BaseModel):
    """ONNX Runtime session options."""

    model_config = _FROZEN
    intra_op_num_threads: Optional[int] = Field(None, ge=0, description="Threads inside an operator (None: ORT decides).")
    inter_op_num_threads: Optional[int] = Field(None, ge=0)
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"


class BackendSpec(BaseModel):
    """Where the generator runs: an ONNX Runtime execution provider, or another implementation run as a command.

    ``kind: external`` runs ``command`` (a list of arguments; ``{request}`` is
    replaced by the path of the JSON request evalkit writes, see
    evalkit/external.py for the interface) instead of evalkit's own pipeline.
    """

    model_config = _FROZEN
    name: Name
    kind: Literal["onnxruntime", "external"] = "onnxruntime"
    provider: str = Field("CPUExecutionProvider", description="ONNX Runtime execution provider name.")
    provider_options: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)
    session_options: SessionOptions = Field(default_factory=SessionOptions)
    command: Optional[list[str]] = Field(None, description="kind external: the program and its arguments.")
    timeout_seconds: float = Field(3600, gt=0, description="kind external: longest a command may run.")
    precision: Literal["fp32", "fp16"] = Field("fp32", description="Selects default parity tolerances.")
    required: bool = Field(False, description="Fail the run when this provider is not available here.")

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
    frames: int = Field(8, ge=1, description="Raw outputs of this many first frames are kept and compared.")
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
    warmup: int = Field(10, ge=0, description="Untimed-for-statistics runs before timing starts (recorded apart).")
    min_timed_frames: int = Field(100, ge=1, description="At least this many timed runs.")
    min_seconds: float = Field(2.0, ge=0, description="And at least this long (seconds) of timed runs.")
    timing_inputs: int = Field(16, ge=1, description="How many of the first frames' inputs are cycled through.")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 4], description="Batch sizes timed when the model's "
                                   "batch axis is dynamic (1 is always timed, frame by frame).")


class SyncNetSpec(BaseModel):
    """A SyncNet exported to ONNX as two streams, for LSE-D and LSE-C."""

    model_config = _FROZEN
    video_model: ExistingFile = Field(description="Video stream: [1, 3, 5, 224, 224] -> embedding.")
    audio_model: ExistingFile = Field(description="Audio stream: 13 MFCCs x 20 columns [1, 1, 13, 20] -> embedding.")
    region: Literal["mouth", "face"] = Field("mouth", description="Crop fed to the video stream: the contract's "
                                             "mouth_box, or the whole inner region.")
    channel_order: Literal["bgr", "rgb"] = "bgr"
    scale: float = Field(1.0, gt=0, description="Pixel multiplier (syncnet_python feeds 0-255).")
    vshift: int = Field(15, ge=1, description="Lags searched: -vshift..vshift frames.")


class MetricsSpec(BaseModel):
    """How outputs are compared with the ground truth and the audio."""

    model_config = _FROZEN
    trim_to_shortest: bool = Field(
        False, description="Compare the first min(N) frames when the output and the ground truth differ in "
        "frame count (otherwise that is an error)."
    )
    sync_max_offset: int = Field(15, ge=1, description="Lags searched by the built-in sync estimator (frames).")
    syncnet: Optional[SyncNetSpec] = Field(None, description="A SyncNet for LSE-D / LSE-C (optional).")


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


class Suite(BaseModel):
    """A declarative evaluation: every model x backend x input is generated and measured."""

    model_config = _FROZEN
    name: Name
    description: str = ""
    output_dir: Optional[SuitePath] = Field(None, description="Where runs land (default: reports/ in the working directory).")
    contract: ContractOverrides = Field(default_factory=ContractOverrides, description="Contract overrides for all models.")
    models: list[ModelSpec] = Field(min_length=1)
    inputs: list[InputSpec] = Field(min_length=1)
    backends: list[BackendSpec] = Field(
        default_factory=lambda: [BackendSpec(name="cpu")], min_length=1, description="Default: one CPU backend."
    )
    timing: TimingSpec = Field(default_factory=TimingSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    parity: ParitySpec = Field(default_factory=ParitySpec)
    golden: Optional[ExistingDir] = Field(None, description="A folder saved by `evalkit run --save-golden`: "
                                          "every run's raw outputs are compared with it.")
    gates: list[GateSpec] = Field(default_factory=list, description="Pass/fail criteria; any failure exits 1.")
    baseline: Optional[str] = Field(None, description="Baseline for relative gates: a folder made by `evalkit "
                                    "baseline set` (relative to the suite file), or a name under ./baselines/.")

    @model_validator(mode="after")
    def _unique_names_and_contracts(self) -> "Suite":
        for group in ("models", "inputs", "backends"):
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


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first error (with the valid keys for an unknown key), and how many more there are."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = ", ".join(parent.model_fields) if parent else "see `evalkit suite schema`"
        text = f"{_loc(loc)}: unknown key '{loc[-1]}' (valid keys: {valid})"
    elif err["type"] == "missing":
        text = f"{_loc(loc)}: required field is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        text = f"{_loc(loc)}: {msg}{shown}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def load_suite(path: Path) -> LoadedSuite:
    """Read and validate a suite file; every problem is a UserError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"suite file not found: {path}")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of suite fields (name, models, inputs, ...) at the top level")
    try:
        suite = Suite.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}") from None
    return LoadedSuite(suite=suite, path=path.resolve(), sha256=hashlib.sha256(text.encode()).hexdigest(), text=text)


def suite_json_schema() -> str:
    """JSON Schema of the suite format, for editor completion."""
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "evalkit suite"
    return json.dumps(schema, indent=2)
