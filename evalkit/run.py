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

from evalkit.comparison import HEAD_OUTPUTS, add_parity, compare_with_golden, golden_items
from evalkit.environment import machine_info, sha256_file, versions
from evalkit.external import run_external
from evalkit.golden import save_golden
from evalkit.history import HISTORY_DB, record_run
from evalkit.errors import UserError
from evalkit.evaluate import measure_run
from evalkit.pipeline import (
    FRAMES_FULL,
    FRAMES_INNER,
    OUTPUT_MP4,
    compute_audio_features,
    generate,
    prepare_input,
)
from evalkit.baseline import load_baseline
from evalkit.gates import evaluate_gates, needs_baseline, unknown_fields
from evalkit.record import RUN_RECORD, json_safe, load_run, summary_row  # noqa: F401 (load_run: re-exported)
from evalkit.report import render_run
from evalkit.runner import OnnxRuntimeRunner, available_providers
from evalkit.suite import SCHEMA_VERSION, BackendSpec, LoadedSuite, SessionOptions


class RequiredBackendMissing(UserError):
    """A backend marked ``required`` cannot run here: the run fails (exit 1)."""

    exit_code = 1


def combo_folder(model: str, backend: str, input_name: str) -> str:
    return f"{model}__{backend}__{input_name}"


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

    Raises UserError (exit 2) for bad inputs and models, RequiredBackendMissing (exit 1)
    for a required provider that this machine lacks.
    """
    suite = loaded.suite
    have = available_providers()
    missing = [b for b in suite.backends if b.kind == "onnxruntime" and b.required and b.provider not in have]
    if missing:
        names = ", ".join(f"{b.name} ({b.provider})" for b in missing)
        raise RequiredBackendMissing(
            f"{loaded.path}: required backend not available here: {names}; this machine has {', '.join(have)}"
        )
    bad = unknown_fields(suite.gates)
    if bad:
        raise UserError(f"{loaded.path}: gates: unknown field {bad[0]!r} (a gate names a summary.csv column, "
                        "e.g. psnr_mean, ssim_min, sync_offset_frames, nan_count, fps)")
    baseline = None
    if needs_baseline(suite.gates):
        if suite.baseline is None:
            raise UserError(f"{loaded.path}: a gate compares with a baseline, but the suite names none "
                            "(add `baseline: NAME`; make one with `evalkit baseline set RUN_DIR --name NAME`)")
        baseline = load_baseline(suite.baseline, loaded.path)
    check_backend = BackendSpec(name="check", session_options=SessionOptions(graph_optimization_level="disable"))
    if suite.golden is not None and not (suite.golden / "golden.json").is_file():
        raise UserError(f"{loaded.path}: golden: {suite.golden} holds no golden.json "
                        "(save one with `evalkit run SUITE --save-golden DIR`)")
    prepared = {}
    for model in suite.models:
        contract = suite.contract_for(model)
        OnnxRuntimeRunner(model.generator, contract, check_backend).activate().deactivate()
        for spec in suite.inputs:
            prepared[(model.name, spec.name)] = prepare_input(spec, contract)
    return prepared, baseline


def _file_facts(path: Path | None) -> dict | None:
    return None if path is None else {"path": str(path), "sha256": sha256_file(path)}


def _generate_on(backend: BackendSpec, model, contract, audio, prep, folder: Path, suite, entry: dict):
    """Generate with evalkit's own pipeline on an ONNX Runtime provider; records what it measured into ``entry``."""
    runner = OnnxRuntimeRunner(model.generator, contract, backend)
    with runner:
        generated = generate(runner, audio, prep, folder, label=f"{model.name}/{backend.name}/{prep.spec.name}",
                             timing=suite.timing, keep_outputs=suite.parity.frames)
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
    )
    return generated


def run_suite(loaded: LoadedSuite, out: Path | None = None, log=print, save_golden_to: Path | None = None) -> Path:
    """Run every model x backend x input of the suite; returns the finished run folder.

    With ``save_golden_to``, the raw outputs of each model x input are also saved there as a golden set.
    """
    suite = loaded.suite
    prepared, baseline = preflight(loaded)
    base = Path(out) if out is not None else (suite.output_dir or Path.cwd() / "reports")
    run_id = new_run_id()
    final = base / suite.name / run_id
    partial = base / suite.name / f".{run_id}.partial"
    partial.mkdir(parents=True)
    have = available_providers()
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "evalkit.run",
        "run_id": run_id,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "path": str(loaded.path), "sha256": loaded.sha256,
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
            for spec in suite.inputs:
                audio = compute_audio_features(spec.audio, model.audio_encoder, model.audio_features, contract)
                prep = prepared[(model.name, spec.name)]
                for backend in suite.backends:
                    entry = {"model": model.name, "backend": backend.name, "input": spec.name,
                             "kind": backend.kind, "provider": backend.provider if backend.kind == "onnxruntime"
                             else None, "precision": backend.precision,
                             "audio_features_seconds": audio.compute_seconds, "audio_seconds": audio.seconds}
                    record["runs"].append(entry)
                    if backend.kind == "onnxruntime" and backend.provider not in have:
                        entry.update(status="skipped", reason=f"not available here (available: {', '.join(have)})")
                        log(f"skipped {model.name} on {backend.name}: {backend.provider} not available here")
                        continue
                    folder = combo_folder(model.name, backend.name, spec.name)
                    (partial / folder).mkdir()
                    entry.update(status="ok", folder=folder, outputs={
                        "mp4": f"{folder}/{OUTPUT_MP4}", "frames_full": f"{folder}/{FRAMES_FULL}",
                        "frames_inner": f"{folder}/{FRAMES_INNER}"})
                    t0 = time.perf_counter()
                    if backend.kind == "external":
                        entry.update(run_external(backend, model, prep, contract, audio.frames, partial / folder))
                    else:
                        generated = _generate_on(backend, model, contract, audio, prep, partial / folder, suite, entry)
                        np.savez_compressed(partial / folder / HEAD_OUTPUTS, outputs=generated.head_outputs)
                    entry["generate_seconds"] = time.perf_counter() - t0
                    log(f"generated {model.name} on {backend.name} for {spec.name}: {entry['frames']} frames "
                        f"in {entry['generate_seconds']:.1f} s")
                    entry.update(measure_run(
                        partial / folder, spec.ground_truth, prep.boxes, prep.video.frames, contract,
                        entry["frames"], suite.metrics, audio.wav, contract.sample_rate,
                    ))
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
        render_run(partial, json_safe(record), log=log)
        partial.rename(final)
        record_run(base / HISTORY_DB, json_safe(record), final)
        if save_golden_to is not None:
            items = golden_items(record, final)
            save_golden(save_golden_to, items)
            log(f"saved golden outputs of {len(items)} model x input pairs to {save_golden_to}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final

