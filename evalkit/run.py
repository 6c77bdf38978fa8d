"""Running a suite: every model x backend x input, into one self-describing run folder.

A run folder ``<out>/<suite-name>/<run-id>/`` holds ``run.json`` (the record:
suite and its SHA-256, model and input hashes, versions, machine, and per
model x backend x input the status, frame count and timings) and one folder
per model x backend x input with the MP4 and the lossless generated frames.

The folder is written as ``.<run-id>.partial`` and renamed when complete, so
an interrupted or failed run never looks complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from evalkit.measure.parity import HEAD_OUTPUTS, add_parity, compare_with_golden, golden_items
from evalkit.record.environment import machine_info, sha256_file, versions
from evalkit.pipeline.external import run_external
from evalkit.measure.golden import save_golden
from evalkit.ci.history import HISTORY_DB, record_run
from evalkit.errors import UserError
from evalkit.measure.outputs import measure_run
from evalkit.pipeline.generate import (
    FRAMES_FULL,
    FRAMES_INNER,
    OUTPUT_MP4,
    compute_audio_features,
    check_protocol,
    generate,
    prepare_input,
    template_index,
)
from evalkit.ci.baseline import load_baseline
from evalkit.ci.gates import evaluate_gates, needs_baseline
from evalkit.record.summary import RUN_RECORD, json_safe, load_run, summary_row  # noqa: F401 (load_run: re-exported)
from evalkit.report import render_run
from evalkit.pipeline.audio import load_audio
from evalkit.pipeline.audio_encoder import load_features
from evalkit.media.ffmpeg import probe_video
from evalkit.pipeline.mel import mel_spectrogram, video_frame_count
from evalkit.pipeline.runner import OnnxRuntimeRunner, available_providers
from evalkit.media.decode import check_decodes
from evalkit.config.suite import (DEFAULT_PROTOCOL, SCHEMA_VERSION, BackendSpec, LoadedSuite, SessionOptions, SuiteError,
                           cross_check)


class RequiredBackendMissing(UserError):
    """A backend marked ``required`` cannot run here: the run fails (exit 1)."""

    exit_code = 1


def combo_folder(model: str, backend: str, input_name: str, protocol: str = DEFAULT_PROTOCOL) -> str:
    """Folder of one model x backend x input x protocol (the default protocol adds nothing to the name)."""
    base = f"{model}__{backend}__{input_name}"
    return base if protocol == DEFAULT_PROTOCOL else f"{base}__{protocol}"


def protocol_audio(suite, spec, protocol) -> Path:
    """The speech that drives ``spec`` under ``protocol``."""
    if protocol.kind == "reconstruction":
        return spec.audio
    if protocol.audio is not None:
        return protocol.audio
    return next(i.audio for i in suite.inputs if i.name == protocol.audio_from)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON under a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str, allow_nan=False) + "\n")
    os.replace(tmp, path)


def preflight(loaded: LoadedSuite) -> tuple[dict, dict | None]:
    """Check everything that can be checked before generating anything; returns the prepared inputs
    and the baseline record (when a gate needs one).

    Cheap but thorough: every template and ground-truth video is decoded once (a file cut short or damaged
    in the middle is caught here, not filled in by the template walk), every generator and audio encoder is
    loaded and its input and output shapes and dtypes checked, every audio file is read and the frame count
    it drives compared with the ground truth's. Raises SuiteError (a UserError, exit 2) listing every problem
    found, RequiredBackendMissing (exit 1) for a required provider that this machine lacks.
    """
    suite = loaded.suite
    have = available_providers()
    missing = [b for b in suite.backends if b.kind == "onnxruntime" and b.required and b.provider not in have]
    if missing:
        names = ", ".join(f"{b.name} ({b.provider})" for b in missing)
        raise RequiredBackendMissing(
            f"{loaded.path}: required backend not available here: {names}; this machine has {', '.join(have)}"
        )
    problems = [f"{loaded.path}: {p}" for p in cross_check(suite)]
    baseline = None
    if needs_baseline(suite.gates):
        if suite.baseline is None:
            problems.append(f"{loaded.path}: a gate compares with a baseline, but the suite names none "
                            "(add `baseline: NAME`; make one with `evalkit baseline set RUN_DIR --name NAME`)")
        else:
            baseline = _collect(problems, load_baseline, suite.baseline, loaded.path)
    check_backend = BackendSpec(name="check", session_options=SessionOptions(graph_optimization_level="disable"))
    if suite.golden is not None and not (suite.golden / "golden.json").is_file():
        problems.append(f"{loaded.path}: golden: {suite.golden} holds no golden.json "
                        "(save one with `evalkit run SUITE --save-golden DIR`)")
    elif suite.golden is not None:
        from evalkit.measure.golden import read_manifest

        _collect(problems, read_manifest, suite.golden / "golden.json")
    videos: dict[Path, object] = {}  # each video decoded once, whatever the number of models
    for spec in suite.inputs:
        for role, path in (("input '%s': template video" % spec.name, spec.video),
                           ("input '%s': ground truth" % spec.name, spec.ground_truth)):
            if path is not None and path not in videos:
                videos[path] = _collect(problems, _decodable_video, path, role)
    wavs: dict = {}
    prepared = {}
    for model in suite.models:
        contract = suite.contract_for(model)
        _collect(problems, lambda: OnnxRuntimeRunner(model.generator, contract, check_backend).activate().deactivate())
        if model.audio_encoder is not None:
            _collect(problems, _check_audio_encoder, model.audio_encoder)
        for spec in suite.inputs:
            if videos.get(spec.video) is None or (spec.ground_truth is not None and videos.get(spec.ground_truth)
                                                 is None):
                continue  # already reported
            prep = _collect(problems, prepare_input, spec, contract)
            if prep is None:
                continue
            prepared[(model.name, spec.name)] = prep
            for protocol in suite.protocols:
                _collect(problems, check_protocol, prep, protocol)
            frames = _collect(problems, _driven_frames, spec.audio, contract, wavs)
            if frames is None:
                continue
            if model.audio_features is not None:
                _collect(problems, load_features, model.audio_features, frames, contract)
            if spec.ground_truth is not None:
                _collect(problems, _check_ground_truth, spec, videos[spec.ground_truth], prep.video,
                         _output_frames(frames, contract), suite.metrics.trim_to_shortest)
    if problems:
        raise SuiteError(list(dict.fromkeys(problems)))  # one model's bad input is reported once
    return prepared, baseline


def _collect(problems: list[str], check, *args):
    """Run ``check(*args)``; a UserError becomes a line of ``problems`` (and None the result)."""
    try:
        return check(*args)
    except SuiteError as exc:
        problems.extend(exc.problems)
    except UserError as exc:
        problems.append(str(exc))
    return None


def _decodable_video(path: Path, role: str):
    info = probe_video(path)
    check_decodes(info, role)
    return info


def _check_audio_encoder(path: Path) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for a file that is not a model
        why = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot load audio encoder {path}: {why} (expected an ONNX model)") from None


def _driven_frames(audio: Path, contract, wavs: dict) -> int:
    """Video frames the audio drives (the mel windows: mel.mel_windows_for_frames' count)."""
    key = (audio, contract.sample_rate)
    if key not in wavs:
        wavs[key] = load_audio(audio, contract.sample_rate)
    mel = mel_spectrogram(wavs[key], contract)
    if mel.shape[1] < contract.mel_window:
        seconds = (contract.mel_window - 1) * contract.hop_length / contract.sample_rate
        raise UserError(f"audio {audio}: the audio gives {mel.shape[1]} mel frames, fewer than one window of "
                        f"{contract.mel_window} (it must be at least {seconds:.3f} s long)")
    return video_frame_count(mel.shape[1], contract)


def _output_frames(windows: int, contract) -> int:
    """Frames a run generates from ``windows`` mel windows (pipeline.compute_audio_features' rule)."""
    if getattr(contract, "frame_count", None) == "padded_features":
        return windows + 2 * contract.feature_pad_repeat
    return windows


def _check_ground_truth(spec, truth, template, frames: int, trim: bool) -> None:
    """The ground truth must be the output's size, and (unless trimming) as long as the output."""
    if (truth.width, truth.height) != (template.width, template.height):
        raise UserError(f"input '{spec.name}': ground truth {spec.ground_truth} is {truth.width}x{truth.height}, "
                        f"the output will be {template.width}x{template.height} (the template's size)")
    if truth.frames != frames and not trim:
        raise UserError(f"input '{spec.name}': ground truth {spec.ground_truth} has {truth.frames} frames, the "
                        f"run will generate {frames} (as many as the audio {spec.audio} drives); set "
                        "metrics.trim_to_shortest: true to compare the first min(N) frames")


def _file_facts(path: Path | None) -> dict | None:
    return None if path is None else {"path": str(path), "sha256": sha256_file(path)}


def _generate_on(backend: BackendSpec, model, contract, audio, prep, folder: Path, suite, entry: dict, protocol):
    """Generate with evalkit's own pipeline on an ONNX Runtime provider; records what it measured into ``entry``."""
    runner = OnnxRuntimeRunner(model.generator, contract, backend)
    with runner:
        generated = generate(runner, audio, prep, folder,
                             label=f"{model.name}/{backend.name}/{prep.spec.name}/{protocol.name}",
                             timing=suite.timing, keep_outputs=suite.parity.frames, protocol=protocol)
    times = generated.times
    opts = backend.session_options
    entry.update(
        frames=generated.frames, providers_used=runner.providers_used, session_seconds=runner.activate_seconds,
        threads={"intra_op": opts.intra_op_num_threads, "inter_op": opts.inter_op_num_threads},
        stage_seconds=times.seconds, inference_ms=times.inference_ms, warmup_ms=times.warmup_ms,
        first_inference_ms=times.warmup_ms[0] if times.warmup_ms else (times.timed_ms or [None])[0],
        timed_ms=times.timed_ms, timed_seconds=times.timed_seconds, output_stats=generated.stats.result(),
        batch_timed_ms={str(k): v for k, v in generated.batch_timings.items()},
        copy_ms=runner.copy_ms if runner.io_binding else None,
        head_inputs_sha256=generated.head_inputs_sha256,
        copy={"mouth_mse": generated.copy_mse, "psnr_db": suite.metrics.copy_psnr_db},
        mouth_sharpness=generated.sharpness,
        template_indices=generated.template_indices,
    )
    return generated


def _run_one(record: dict, partial: Path, suite, model, contract, spec, prep, protocol, backend, audio,
             ground_truth, have: list[str], log) -> None:
    """Generate and measure one model x backend x input x protocol; appends its entry to the record."""
    entry = {"model": model.name, "backend": backend.name, "input": spec.name, "protocol": protocol.name,
             "protocol_kind": protocol.kind, "reference_frames": protocol.reference,
             "kind": backend.kind, "provider": backend.provider if backend.kind == "onnxruntime" else None,
             "precision": backend.precision, "driving_audio": audio.path.name if audio.path else None,
             "audio_features_seconds": audio.compute_seconds, "audio_seconds": audio.seconds}
    record["runs"].append(entry)
    what = f"{model.name} on {backend.name} for {spec.name} ({protocol.name})"
    if backend.kind == "onnxruntime" and backend.provider not in have:
        entry.update(status="skipped", reason=f"not available here (available: {', '.join(have)})")
        log(f"skipped {what}: {backend.provider} not available here")
        return
    if backend.kind == "external" and (protocol.kind != "reconstruction" or protocol.reference != "same"
                                       or contract.template_start != 0):
        entry.update(status="skipped", reason="an external backend runs its own pipeline: only the reconstruction "
                     "protocol with reference same and the contract's template walk")
        log(f"skipped {what}: {entry['reason']}")
        return
    folder = combo_folder(model.name, backend.name, spec.name, protocol.name)
    (partial / folder).mkdir()
    entry.update(status="ok", folder=folder, outputs={
        "mp4": f"{folder}/{OUTPUT_MP4}", "frames_full": f"{folder}/{FRAMES_FULL}",
        "frames_inner": f"{folder}/{FRAMES_INNER}"})
    t0 = time.perf_counter()
    if backend.kind == "external":
        entry.update(run_external(backend, model, prep, contract, audio.frames, partial / folder))
        indices = [template_index(i, prep.video.frames, contract) for i in range(entry["frames"])]
    else:
        generated = _generate_on(backend, model, contract, audio, prep, partial / folder, suite, entry, protocol)
        np.savez_compressed(partial / folder / HEAD_OUTPUTS, outputs=generated.head_outputs)
        indices = generated.template_indices
    entry["generate_seconds"] = time.perf_counter() - t0
    log(f"generated {what}: {entry['frames']} frames in {entry['generate_seconds']:.1f} s")
    log(f"measuring {what} (fidelity and sync against the ground truth and the audio) ...")
    entry.update(measure_run(
        partial / folder, ground_truth, prep.boxes, indices, contract,
        entry["frames"], suite.metrics, audio.wav, contract.sample_rate,
    ))


def run_suite(loaded: LoadedSuite, out: Path | None = None, log=print, save_golden_to: Path | None = None,
              keep_suite_as: str | None = None) -> Path:
    """Run every model x backend x input of the suite; returns the finished run folder.

    With ``save_golden_to``, the raw outputs of each model x input are also saved there as a golden set.
    With ``keep_suite_as`` (a file name), the suite's text is written into the run folder under that name and
    the record names that copy as the suite's path (a suite made on the command line, from a temporary file).
    """
    suite = loaded.suite
    prepared, baseline = preflight(loaded)
    base = Path(out) if out is not None else (suite.output_dir or Path.cwd() / "reports")
    run_id = new_run_id()
    final = base / suite.name / run_id
    partial = base / suite.name / f".{run_id}.partial"
    partial.mkdir(parents=True)
    if keep_suite_as:
        (partial / keep_suite_as).write_text(loaded.text)
    have = available_providers()
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "evalkit.run",
        "run_id": run_id,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "path": str(final / keep_suite_as if keep_suite_as else loaded.path),
                  "sha256": loaded.sha256,
                  "definition": suite.model_dump(mode="json")},
        "machine": machine_info(),
        "versions": versions(),
        "available_providers": have,
        "models": {},
        "inputs": {},
        "runs": [],
    }
    try:
        for spec in suite.inputs:
            video = prepared[(suite.models[0].name, spec.name)].video
            record["inputs"][spec.name] = {
                "video": _file_facts(spec.video), "audio": _file_facts(spec.audio),
                "crop_boxes": _file_facts(spec.crop_boxes),
                "landmarks": str(spec.landmarks) if spec.landmarks else None,
                "ground_truth": _file_facts(spec.ground_truth),
                "video_frames": video.frames, "fps": video.fps, "size": [video.width, video.height],
            }
        for model in suite.models:
            contract = suite.contract_for(model)
            record["models"][model.name] = {
                "generator": _file_facts(model.generator), "audio_encoder": _file_facts(model.audio_encoder),
                "audio_features": _file_facts(model.audio_features), "contract": contract.model_dump(mode="json"),
            }
            features = {}  # audio path -> features, computed once per model
            for spec in suite.inputs:
                prep = prepared[(model.name, spec.name)]
                for protocol in suite.protocols:
                    audio_path = protocol_audio(suite, spec, protocol)
                    if audio_path not in features:
                        features[audio_path] = compute_audio_features(audio_path, model.audio_encoder,
                                                                      model.audio_features, contract)
                    audio = features[audio_path]
                    ground_truth = spec.ground_truth if protocol.kind == "reconstruction" else None
                    for backend in suite.backends:
                        _run_one(record, partial, suite, model, contract, spec, prep, protocol, backend, audio,
                                 ground_truth, have, log)
        log("comparing backends (parity) ...")
        record["parity"] = add_parity(record, suite, partial, log=log)
        if suite.golden is not None:
            compare_with_golden(record, suite, partial)
        for entry in record["runs"]:
            entry["summary"] = summary_row(entry)
        if suite.gates:
            results = evaluate_gates(record, suite.gates, baseline)
            record["gates"] = [r.to_dict() for r in results]
            record["gates_passed"] = all(results)
            if baseline is not None:
                record["baseline"] = {"run_id": baseline["run_id"], "suite": baseline["suite"]["name"],
                                      "machine": baseline["machine"]}
        record["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json_atomic(partial / RUN_RECORD, json_safe(record))
        log("writing the report (summary.csv, frames.csv, report.html) ...")
        render_run(partial, json_safe(record), log=log)
        partial.rename(final)
        log(f"recording the run in {base / HISTORY_DB} ...")
        record_run(base / HISTORY_DB, json_safe(record), final)
        if save_golden_to is not None:
            items = golden_items(record, final)
            save_golden(save_golden_to, items)
            log(f"saved golden outputs of {len(items)} model x input pairs to {save_golden_to}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final

