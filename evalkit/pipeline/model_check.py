"""``evalkit model check``: does an exported generator (and its audio encoder) fit the contract?

Static checks first, from the ONNX file and the session ONNX Runtime builds
from it: opset, the image and audio inputs (by the contract's names, else by
shape, as ``runner.OnnxRuntimeRunner`` binds them), their shapes (symbolic
axes accept any size) and element types (float32: what the pipeline feeds),
the output. Then one real frame through both models: speech-like audio
(evalkit's synthetic speech) -> mel window -> encoder -> feature window, and a
drawn face (evalkit's fixture face) -> 6-channel crop -> generator; the output
must have the contract's shape, lie in [0, 1] and hold no NaN or Inf.

Each result is a ``Finding``: one line saying what was found and, when it
fails, what to change in the export. A file that is not an ONNX model at all
is a UserError (exit 2), not a finding.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from evalkit.config.contract import Contract
from evalkit.errors import UserError

Level = Literal["info", "warning", "error"]
EXPORT_OPSET = 17  # the opset docs/export.md exports with; others are fine when ONNX Runtime runs them
CHECK_AUDIO_SECONDS = 2.0  # long enough for a full feature window around the middle frame (16 rows of 40 ms)
FLOAT32 = "tensor(float)"
_TYPE_NAMES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(bfloat16)": "bfloat16", "tensor(int64)": "int64", "tensor(int32)": "int32",
               "tensor(uint8)": "uint8"}


@dataclass(frozen=True)
class Finding:
    """One result: ``ok`` False fails the check; ``level`` is error (fails), warning or info (passes)."""

    level: Level
    ok: bool
    message: str


@dataclass
class ModelCheck:
    """Every finding on a generator (and encoder); truthy when none failed."""

    generator: Path
    encoder: Path | None
    findings: list[Finding]

    def __bool__(self) -> bool:
        return all(f.ok for f in self.findings)

    def to_dict(self) -> dict:
        return {"generator": str(self.generator), "encoder": str(self.encoder) if self.encoder else None,
                "passed": bool(self), "findings": [asdict(f) for f in self.findings]}


def _type_name(onnx_type: str) -> str:
    return _TYPE_NAMES.get(onnx_type, onnx_type)


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) else repr(d) for d in shape) + "]"


def _dims(expected) -> str:
    return "[" + ",".join(str(d) for d in expected) + "]"


def _symbolic_axes(name: str, shape) -> list[str]:
    return [f"{name}[{i}]={d!r}" for i, d in enumerate(shape) if not isinstance(d, int)]


def _load_onnx(path: Path, what: str):
    """The ONNX model proto; an unreadable file is a UserError (exit 2)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    if path.stat().st_size == 0:  # protobuf reads no bytes as an empty model: say what it is
        raise UserError(f"{what} {path}: not an ONNX model (an empty file, 0 bytes: an export or a copy that did not "
                        "finish); give the .onnx file torch.onnx.export wrote")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a file that is not a model
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"{what} {path}: not an ONNX model ({why}); give the .onnx file torch.onnx.export wrote") \
            from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise UserError(f"{what} {path}: not an ONNX model (it holds no graph); give the .onnx file "
                        "torch.onnx.export wrote")
    return proto


def _opset_finding(proto, where: str) -> Finding:
    import onnxruntime as ort

    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        return Finding("error", False, f"{where}: no default-domain opset: export with torch.onnx.export(..., "
                       f"opset_version={EXPORT_OPSET})")
    if opset == EXPORT_OPSET:
        return Finding("info", True, f"{where}: opset {opset}")
    return Finding("warning", True, f"{where}: opset {opset} (the export guide uses {EXPORT_OPSET}; fine as long "
                   f"as ONNX Runtime {ort.__version__} runs it, checked below)")


def _session(path: Path, where: str, findings: list[Finding]):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for a graph it cannot run
        why = " ".join(str(exc).split())[:200]
        findings.append(Finding("error", False, f"{where}: ONNX Runtime cannot load it ({why}): re-export with "
                                f"opset_version={EXPORT_OPSET} and check the graph with onnx.checker.check_model"))
        return None


def check_generator_io(session, contract: Contract, where: str) -> list[Finding]:
    """Findings on the generator's inputs and output, bound as ``runner.OnnxRuntimeRunner`` binds them."""
    from evalkit.pipeline.runner import _shape_fits

    c = contract
    out: list[Finding] = []
    inputs = {i.name: i for i in session.get_inputs()}
    shapes = "{" + ", ".join(f"'{n}': {_shape_text(i.shape)}" for n, i in inputs.items()) + "}"
    image_shape, audio_shape = c.image_input_shape, (1, *c.audio_input_shape)
    # the image input: by the contract's name, else the 4-D input with 6 channels (the runner's rule)
    if c.image_input is not None and c.image_input not in inputs:
        out.append(Finding("error", False, f"{where}: no input named '{c.image_input}' (contract.image_input); the "
                           f"inputs are {list(inputs)}: export with input_names=['{c.image_input}', ...] or set "
                           f"contract.image_input to the image input's name"))
        image_name = None
    else:
        image_name = c.image_input or next(
            (n for n, i in inputs.items() if len(i.shape) == 4 and i.shape[1] == image_shape[1]), None)
        if image_name is None:
            out.append(Finding("error", False, f"{where}: no input of shape {_dims(image_shape)} (the 6-channel face "
                               f"crop: the {c.inner_width}x{c.inner_height} region and its masked copy); inputs are "
                               f"{shapes}: export with that image input, or set contract.image_input to name it"))
        elif not _shape_fits(inputs[image_name].shape, image_shape):
            out.append(Finding("error", False, f"{where}: input '{image_name}' has shape "
                               f"{_shape_text(inputs[image_name].shape)}, the contract expects {_dims(image_shape)}: "
                               f"export with a dummy image of that shape, or set the contract's inner_box/crop_size "
                               f"to the model's size"))
        else:
            out.append(Finding("info", True, f"{where}: image input '{image_name}' "
                               f"{_shape_text(inputs[image_name].shape)} fits {_dims(image_shape)}"))
    # the audio input: by the contract's name, else the other input
    others = [n for n in inputs if n != image_name]
    audio_name = None
    if c.audio_input is not None:
        if c.audio_input not in inputs:
            out.append(Finding("error", False, f"{where}: no input named '{c.audio_input}' (contract.audio_input); "
                               f"the inputs are {list(inputs)}: export with input_names=[..., '{c.audio_input}'] or "
                               f"set contract.audio_input to the audio input's name"))
        else:
            audio_name = c.audio_input
    elif not others:
        out.append(Finding("error", False, f"{where}: no audio input: the only input is {shapes}; the generator "
                           f"needs a second input of shape {_dims(audio_shape)} (the window of "
                           f"{c.feature_window_rows} audio-encoder rows of {c.feature_dim}): export with both inputs, "
                           f"torch.onnx.export(model, (image, audio), ..., input_names=['image', 'audio'])"))
    elif len(others) > 1 and image_name is not None:
        out.append(Finding("error", False, f"{where}: {len(inputs)} inputs {shapes}; evalkit feeds exactly two "
                           f"(image, audio): export only those, or name them with contract.image_input and "
                           f"contract.audio_input"))
    elif image_name is not None:
        audio_name = others[0]
    if audio_name is not None:
        shape = inputs[audio_name].shape
        if not _shape_fits(shape, audio_shape):
            out.append(Finding("error", False, f"{where}: audio input '{audio_name}' has shape {_shape_text(shape)}, "
                               f"the contract expects {_dims(audio_shape)} (ave [1,32,16,16]; hubert [1,32,32,32], "
                               f"wenet [1,256,16,32]): reshape the window that way in the export, or set "
                               f"contract.audio_input_shape to the model's"))
        else:
            out.append(Finding("info", True, f"{where}: audio input '{audio_name}' {_shape_text(shape)} fits "
                               f"{_dims(audio_shape)}"))
    # the output: the first one is what evalkit reads
    outputs = session.get_outputs()
    first = outputs[0]
    if not _shape_fits(first.shape, c.output_shape):
        out.append(Finding("error", False, f"{where}: output '{first.name}' has shape {_shape_text(first.shape)}, "
                           f"the contract expects {_dims(c.output_shape)}: return the re-drawn "
                           f"{c.inner_width}x{c.inner_height} RGB region as the first output"))
    else:
        out.append(Finding("info", True, f"{where}: output '{first.name}' {_shape_text(first.shape)} fits "
                           f"{_dims(c.output_shape)}"))
    if len(outputs) > 1:
        out.append(Finding("warning", True, f"{where}: {len(outputs)} outputs; evalkit reads only the first "
                           f"('{first.name}'): export with output_names=['{first.name}'] and drop the others"))
    # element types: the pipeline feeds and reads float32
    for kind, arg in [("input", inputs[n]) for n in (image_name, audio_name) if n] + [("output", first)]:
        if arg.type != FLOAT32:
            out.append(Finding("error", False, f"{where}: {kind} '{arg.name}' is {_type_name(arg.type)}: export with "
                               f"float32 {kind}s (torch.onnx.export of a .float() model; to run in float16, cast "
                               f"inside the graph and keep the {kind}s float32)"))
    preset = _preset_fitting(inputs, c)
    if preset is not None:
        out.append(Finding("error", False, f"{where}: a {preset[1]} px export of the family, not the contract's "
                           f"{c.inner_width} px: run it under the shipped preset, {preset[0]}"))
    axes = [a for n in (image_name, audio_name) if n for a in _symbolic_axes(n, inputs[n].shape)]
    axes += _symbolic_axes(first.name, first.shape)
    if axes:
        out.append(Finding("info", True, f"{where}: dynamic axes {', '.join(axes)} (a dynamic batch axis lets "
                           "evalkit time batches: timing.batch_sizes)"))
    else:
        out.append(Finding("info", True, f"{where}: static shapes (batch 1 only; optional: dynamic_axes="
                           "{'image': {0: 'batch'}, 'audio': {0: 'batch'}, 'output': {0: 'batch'}} to time batches)"))
    return out


def _preset_fitting(inputs: dict, contract: Contract) -> tuple[str, int] | None:
    """(the suite line of the shipped preset, its size) when the model's 6-channel image input does not fit the
    contract but fits a preset (config.contract.preset_for); None otherwise."""
    from evalkit.config.contract import preset_for
    from evalkit.pipeline.runner import _shape_fits

    images = [i for i in inputs.values() if len(i.shape) == 4 and i.shape[1] == 6]
    if len(images) != 1 or _shape_fits(images[0].shape, contract.image_input_shape):
        return None
    others = [i for i in inputs.values() if i is not images[0]]
    line = preset_for(images[0].shape, others[0].shape if len(others) == 1 else None)
    return (line, images[0].shape[-1]) if line else None


def check_encoder_io(session, contract: Contract, where: str) -> list[Finding]:
    """Findings on the audio encoder's input (as ``audio_encoder.encode_mel_windows`` checks it) and output."""
    from evalkit.pipeline.audio_encoder import _check_shape

    c = contract
    out: list[Finding] = []
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = [1, 1, c.n_mels, c.mel_window]
    if len(inputs) != 1:
        out.append(Finding("error", False, f"{where}: {len(inputs)} inputs {[i.name for i in inputs]}; the encoder "
                           f"takes one mel window {_dims(expected)}: export with that single input"))
        return out
    arg = inputs[0]
    try:
        _check_shape(f"{where}: input '{arg.name}'", arg.shape, expected)
        out.append(Finding("info", True, f"{where}: input '{arg.name}' {_shape_text(arg.shape)} fits "
                           f"{_dims(expected)} (one mel window: {c.n_mels} bands x {c.mel_window} frames)"))
    except UserError as exc:
        out.append(Finding("error", False, f"{exc}: export with a dummy mel window torch.zeros{tuple(expected)}"))
    sizes = [d for d in outputs[0].shape if isinstance(d, int)]
    if len(sizes) == len(outputs[0].shape) and int(np.prod(sizes)) != c.feature_dim:
        out.append(Finding("error", False, f"{where}: output '{outputs[0].name}' has shape "
                           f"{_shape_text(outputs[0].shape)}, {int(np.prod(sizes))} values per window; the generator "
                           f"reads rows of {c.feature_dim} (contract.feature_dim): export the {c.feature_dim}-d "
                           "AudioEncoder output"))
    for kind, a in (("input", arg), ("output", outputs[0])):
        if a.type != FLOAT32:
            out.append(Finding("error", False, f"{where}: {kind} '{a.name}' is {_type_name(a.type)}: export with "
                               f"float32 {kind}s (torch.onnx.export of a .float() model)"))
    return out


def real_inputs(contract: Contract, encoder: Path | None, findings: list[Finding]):
    """One frame's real generator inputs (image [1,6,H,W], audio window); None when the encoder fails."""
    from evalkit.pipeline.audio_encoder import encode_mel_windows, pad_feature_ends
    from evalkit.pipeline.crop import CropPreparer
    from evalkit.pipeline.feature_windows import feature_window
    from evalkit.fixtures.talking_head import FaceDesign, FaceRenderer, synth_speech
    from evalkit.pipeline.mel import mel_spectrogram, mel_windows_for_frames

    c = contract
    design = FaceDesign(seconds=CHECK_AUDIO_SECONDS, sample_rate=c.sample_rate)
    wav = synth_speech(design)
    windows = mel_windows_for_frames(mel_spectrogram(wav, c), c)
    frame = len(windows) // 2
    if encoder is not None:
        where = f"audio encoder {encoder}"
        try:
            rows = encode_mel_windows(encoder, windows, c)
        except UserError as exc:
            findings.append(Finding("error", False, str(exc)))
            return None
        except Exception as exc:  # ONNX Runtime's own error types at run time
            why = " ".join(str(exc).split())[:200]
            findings.append(Finding("error", False, f"{where}: running it on real mel windows failed ({why})"))
            return None
        bad = int(np.count_nonzero(~np.isfinite(rows)))
        if bad:
            findings.append(Finding("error", False, f"{where}: {bad} NaN/Inf values in its output for "
                                    f"{len(windows)} real mel windows: export it in float32 and check it in PyTorch"))
            return None
        findings.append(Finding("info", True, f"{where}: {len(windows)} real mel windows -> rows of {c.feature_dim}, "
                                f"finite (range {rows.min():.3g} .. {rows.max():.3g})"))
    else:
        rows = np.random.default_rng(0).standard_normal((len(windows), c.feature_dim)).astype(np.float32)
        findings.append(Finding("info", True, "no audio encoder given: the audio input gets seeded random rows "
                                "(give E.onnx to check the encoder and feed real features)"))
    audio = feature_window(pad_feature_ends(rows, c), frame, c)
    face = FaceRenderer(FaceDesign(sample_rate=c.sample_rate))
    picture = face.render(frame, float(face.design.opening(np.array(-1.5))))
    image = CropPreparer(c).prepare(picture, face.design.box(frame)).copy()
    return image, audio


def check_model(generator: Path, encoder: Path | None = None, contract: Contract | None = None) -> ModelCheck:
    """Every finding on ``generator`` (and ``encoder``) against ``contract`` (default: the reference contract).

    Raises UserError only for a file that is missing or not an ONNX model.
    """
    from evalkit.pipeline.runner import OnnxRuntimeRunner
    from evalkit.config.suite import BackendSpec

    c = contract or Contract()
    generator = Path(generator)
    encoder = Path(encoder) if encoder is not None else None
    g_proto = _load_onnx(generator, "generator")
    e_proto = _load_onnx(encoder, "audio encoder") if encoder is not None else None
    findings: list[Finding] = []
    g_where = f"generator {generator}"
    findings.append(_opset_finding(g_proto, g_where))
    g_session = _session(generator, g_where, findings)
    if g_session is not None:
        findings += check_generator_io(g_session, c, g_where)
    encoder_ok = True
    if encoder is not None:
        e_where = f"audio encoder {encoder}"
        findings.append(_opset_finding(e_proto, e_where))
        e_session = _session(encoder, e_where, findings)
        if e_session is not None:
            e_findings = check_encoder_io(e_session, c, e_where)
            findings += e_findings
            encoder_ok = all(f.ok for f in e_findings)
        else:
            encoder_ok = False
    if not all(f.ok for f in findings):
        findings.append(Finding("info", True, "one real frame: not run (fix the findings above first)"))
        return ModelCheck(generator, encoder, findings)
    inputs = real_inputs(c, encoder if encoder_ok else None, findings)
    if inputs is None:
        return ModelCheck(generator, encoder, findings)
    image, audio = inputs
    runner = OnnxRuntimeRunner(generator, c, BackendSpec(name="check"))
    try:
        runner.activate()  # the very binding `evalkit run` does
    except UserError as exc:
        findings.append(Finding("error", False, str(exc)))
        return ModelCheck(generator, encoder, findings)
    try:
        t0 = time.perf_counter()
        output = runner.infer(image, audio)
        ms = (time.perf_counter() - t0) * 1e3
    except Exception as exc:  # ONNX Runtime's own error types at run time
        why = " ".join(str(exc).split())[:200]
        findings.append(Finding("error", False, f"{g_where}: one real frame failed to run ({why})"))
        return ModelCheck(generator, encoder, findings)
    finally:
        runner.deactivate()
    findings += check_output(np.asarray(output), c, g_where, ms)
    return ModelCheck(generator, encoder, findings)


def check_output(output: np.ndarray, contract: Contract, where: str, ms: float) -> list[Finding]:
    """Findings on one real frame's output: shape, NaN/Inf, the [0, 1] range."""
    out: list[Finding] = []
    if tuple(output.shape) != contract.output_shape:
        return [Finding("error", False, f"{where}: one real frame gave an output of shape {list(output.shape)}, the "
                        f"contract expects {_dims(contract.output_shape)}: return [1, 3, H, W] for one frame")]
    nan, inf = int(np.isnan(output).sum()), int(np.isinf(output).sum())
    if nan or inf:
        out.append(Finding("error", False, f"{where}: one real frame gave {nan} NaN and {inf} Inf output values: "
                           "check the PyTorch model on the same input; a float16 export overflows, export float32"))
    finite = output[np.isfinite(output)]
    outside = int(np.count_nonzero((finite < 0) | (finite > 1)))
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (float("nan"), float("nan"))
    if outside:
        out.append(Finding("error", False, f"{where}: output has {outside} values outside [0,1] (min {lo:.4g}, max "
                           f"{hi:.4g}) on one real frame: end the network with a sigmoid (or clamp(0, 1)) before "
                           "export; evalkit multiplies by 255 and clips"))
    if not out:
        out.append(Finding("info", True, f"{where}: one real frame: output {list(output.shape)} in [0,1] (min "
                           f"{lo:.4g}, max {hi:.4g}), no NaN/Inf, first run {ms:.1f} ms"))
    return out


def format_finding(finding: Finding) -> str:
    """One line: PASS/WARN/FAIL and the message."""
    tag = "FAIL" if not finding.ok else ("WARN" if finding.level == "warning" else "ok  ")
    return f"{tag}  {finding.message}"
