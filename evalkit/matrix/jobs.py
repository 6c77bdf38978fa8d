"""The run matrix: one job per model x backend x input x protocol (a "combination"), each its own unit.

The matrix is three modules: its plan (``matrix.plan``: ``Job``, ``plan_jobs``, ``longest_first``), one job
(this module) and the partial run's state (``matrix.state``: run_state.json, finished entries, the folder's lock).
Their names are also importable from here, as before the split.

A job is named by its four names (``Job``) and run by ``run_job`` from picklable arguments (the loaded suite,
the job, the run folder), in this process, in a worker process or in a Ray task (evalkit/matrix/executors.py). It
generates and measures into its combination folder and returns the record's entry for it. An exception inside
a job becomes that entry's ``status: "failed"`` with a one-line ``reason`` and ``errors`` ("user: ..." for bad
input or an ONNX Runtime error, "internal: ..." for a bug in evalkit, whose traceback is kept in the folder
as ``traceback.txt``): the other jobs run on.

A finished job leaves ``entry.json`` in its folder, and the ``.partial`` run folder holds ``run_state.json``
(the suite file and its SHA-256, the run id, the input files' facts): an interrupted run is completed by
``evalkit run --resume DIR``, which keeps the entries with status "ok" and runs the rest again.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections import OrderedDict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from evalkit.config.suite import BackendSpec, LoadedSuite
from evalkit.errors import UserError
from evalkit.faults import fault_point
from evalkit.matrix.plan import (Job, combo_folder, expected_cost, job_specs, longest_first,  # noqa: F401 (re-exported)
                                 plan_jobs, protocol_audio)
from evalkit.matrix.state import (ENTRY_JSON, LOCK_FILE, STATE_JSON, STATE_KIND, PartialRun,  # noqa: F401 (re-exported)
                                  RunLock, claim, finished_entries, locked, mark_stopped, partial_runs,
                                  process_started, read_state, write_state, writer_running)
from evalkit.media.encode import MP4_THREADS
from evalkit.measure.outputs import measure_run
from evalkit.measure.stream import StreamMeasures
from evalkit.pipeline.external import run_external
from evalkit.pipeline.generate import compute_audio_features, generate, prepare_input, template_index
from evalkit.pipeline.runner import OnnxRuntimeRunner, ProviderDidNotStart, available_providers
from evalkit.record.io import write_text_atomic
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, HEAD_OUTPUTS, OUTPUT_MP4

TRACEBACK_TXT = "traceback.txt"  # a failed combination's traceback, when evalkit's bug failed it


# --- per-process caches: a worker computes each audio's features and prepares each input once ---------------

_CACHE_SIZE = 16  # entries per cache: a suite's models x audio files, far below any memory concern
_features_cache: OrderedDict = OrderedDict()
_prepared_cache: OrderedDict = OrderedDict()


def _file_key(path: Path | None):
    """A file's identity for a cache: path, size and modification time (a rewritten file is a new key)."""
    if path is None:
        return None
    st = Path(path).stat()
    return str(path), st.st_size, st.st_mtime_ns


def _cached(cache: OrderedDict, key, make):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def audio_features(audio_path: Path, model, contract):
    key = (_file_key(audio_path), _file_key(model.audio_encoder), _file_key(model.audio_features),
           contract.model_dump_json())
    return _cached(_features_cache, key, lambda: compute_audio_features(audio_path, model.audio_encoder,
                                                                         model.audio_features, contract))


def prepared_input(spec, contract):
    key = (spec.model_dump_json(), _file_key(spec.video), _file_key(spec.crop_boxes), contract.model_dump_json())
    return _cached(_prepared_cache, key, lambda: prepare_input(spec, contract))


# --- one job ----------------------------------------------------------------------------------------------

def one_blas_thread():
    """A context in which BLAS (OpenBLAS, numpy's) uses one thread. evalkit's matrix work is small (mel filters,
    the sync estimator's PCA) and runs beside ONNX Runtime's and the stages' threads: there, OpenBLAS's own
    spinning threads made a 317 x 317 eigh take 0.6-1.6 s instead of 9 ms on 2 cores. The CLI also sets
    OPENBLAS_NUM_THREADS; this covers library callers (``run_suite``), worker processes and Ray tasks."""
    return threadpool_limits(limits=1, user_api="blas")


def run_job(loaded: LoadedSuite, job: Job, run_dir: Path, log=None) -> dict:
    """Generate and measure one combination into ``run_dir/<job.folder>``; returns its record entry (see
    ``_job``), with BLAS on one thread (``one_blas_thread``)."""
    with one_blas_thread():
        return _job(loaded, job, run_dir, log)


def _job(loaded: LoadedSuite, job: Job, run_dir: Path, log=None) -> dict:
    """Generate and measure one combination into ``run_dir/<job.folder>``; returns its record entry.

    Never raises for a failure of the combination itself (an Exception): the entry says ``failed``. An
    interruption (KeyboardInterrupt, SIGTERM) goes through. A combination that ran (ok or failed) leaves
    ``entry.json`` in its folder; a folder left by an earlier, interrupted try is replaced.
    """
    log = log or (lambda *_: None)
    run_dir = Path(run_dir)
    suite = loaded.suite
    model, backend, spec, protocol = job_specs(suite, job)
    contract = suite.contract_for(model)
    folder = run_dir / job.folder
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted try's leftovers
    fault_point(f"job:{job.folder}")
    try:
        prep = prepared_input(spec, contract)
        audio = audio_features(protocol_audio(suite, spec, protocol), model, contract)
        ground_truth = spec.ground_truth if protocol.kind == "reconstruction" else None
        entry = _run_one(run_dir, suite, model, contract, spec, prep, protocol, backend, audio, ground_truth,
                         available_providers(), log)
    except Exception as exc:  # the combination failed; the others run on
        entry = failed_entry(job, suite, exc, folder)
        log(f"FAILED {job.label}: {entry['reason']}")
    if entry["status"] != "skipped":
        write_entry(folder, entry)
    return entry


def _identity(model, backend: BackendSpec, spec, protocol) -> dict:
    return {"model": model.name, "backend": backend.name, "input": spec.name, "protocol": protocol.name,
            "protocol_kind": protocol.kind, "reference_frames": protocol.reference,
            "kind": backend.kind, "provider": backend.provider if backend.kind == "onnxruntime" else None,
            "precision": backend.precision}


def assemble_entry(*parts: dict) -> dict:
    """The record entry of one combination, assembled once from the parts its producers returned (identity,
    outcome, what generation timed, what measuring found, ...): each key from one part only (two parts
    setting one key is a bug), the whole checked against the record's type (``record.schema.RunEntry``: a
    misspelt or mistyped key fails here, in the job that made it, not when the run is recorded).

    Returned as a dict (what entry.json, the executors and a resume keep): every key of the type, None where
    the combination produced no such part."""
    from evalkit.record.schema import RunEntry
    from evalkit.record.summary import json_safe

    entry: dict = {}
    for part in parts:
        twice = sorted(set(entry) & set(part))
        if twice:
            raise ValueError(f"record entry: {', '.join(twice)} produced twice")
        entry.update(part)
    checked = RunEntry.model_validate({**json_safe(entry), "summary": {}})  # the row is made when recorded
    return checked.model_dump(mode="json", exclude={"summary", "verdict"})


def is_user_error(exc: BaseException) -> bool:
    """Bad input, a file or the disk, or ONNX Runtime refusing the model: the user's to fix, not evalkit's bug."""
    return (isinstance(exc, UserError) or type(exc).__module__.startswith("onnxruntime")
            or (isinstance(exc, OSError) and exc.filename is not None))


def skipped_entry(job: Job, suite, reason: str) -> dict:
    """The entry of a combination that cannot run where it was sent (``reason`` says why)."""
    return assemble_entry(_identity(*job_specs(suite, job)), {"status": "skipped", "reason": reason})


USER, INTERNAL = "user", "internal"
"""A failed entry's ``errors`` starts with one of these: the user's to fix (exit 1), or a bug in evalkit (exit 3)."""


def failed_entry(job: Job, suite, exc: Exception, folder: Path) -> dict:
    """The entry of a combination that raised: identity, status failed, a one-line ``reason``, ``errors`` (the
    error's kind and type, e.g. "internal: KeyError") and, for a bug, ``traceback`` (its file in the folder)."""
    model, backend, spec, protocol = job_specs(suite, job)
    user = is_user_error(exc)
    message = " ".join(str(exc).split())[:400] or type(exc).__name__
    folder.mkdir(parents=True, exist_ok=True)
    outcome = {"status": "failed", "folder": job.folder, "errors": f"{USER if user else INTERNAL}: {type(exc).__name__}",
               "traceback": None}
    if user:
        outcome["reason"] = message if isinstance(exc, UserError) else f"{type(exc).__name__}: {message}"
    else:
        write_text_atomic(folder / TRACEBACK_TXT, "".join(traceback.format_exception(exc)))
        outcome["traceback"] = f"{job.folder}/{TRACEBACK_TXT}"
        outcome["reason"] = (f"{type(exc).__name__}: {message} (a bug in evalkit; please report it with the "
                             f"traceback in {job.folder}/{TRACEBACK_TXT})")
    return assemble_entry(_identity(model, backend, spec, protocol), outcome)


WORKER_DIED = "user: WorkerDied"  # a failed entry's ``errors`` when the process running it died


def worker_died_entry(job: Job, suite, exitcode: int | None) -> dict:
    """The entry of a combination whose worker process died while running it (SIGKILL from the out-of-memory
    killer, a crash in a native library): failed, with the reason; kept in its folder, and run again by
    ``--resume`` (only "ok" entries are kept by a resume)."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        how = f"worker killed by signal {-exitcode} ({name}" + (
            ": what the out-of-memory killer sends" if -exitcode == signal.SIGKILL else "") + ")"
    else:
        how = f"worker exited with code {exitcode} without finishing"
    return assemble_entry(_identity(*job_specs(suite, job)), {"status": "failed", "folder": job.folder,
                                                             "errors": WORKER_DIED, "traceback": None, "reason": how})


def failure_kind(entry) -> str | None:
    """USER or INTERNAL for a failed entry (a ``record.schema.RunEntry``, or a job's entry dict), None for any
    other."""
    status, errors = (entry.get("status"), entry.get("errors")) if isinstance(entry, dict) else (entry.status,
                                                                                                entry.errors)
    if status != "failed":
        return None
    return INTERNAL if str(errors or "").startswith(INTERNAL) else USER


def write_entry(folder: Path, entry: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / ENTRY_JSON, json.dumps(entry, indent=1, default=str, allow_nan=True) + "\n")


def read_entry(folder: Path) -> dict | None:
    path = folder / ENTRY_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def keeps_full_frames(suite) -> bool:
    """Full frames are kept losslessly when the suite asks, or when an external backend (whose own pipeline
    writes only full frames) must be compared picture by picture with evalkit's."""
    return suite.store_full_frames or any(b.kind == "external" for b in suite.backends)


def _generate_on(backend: BackendSpec, model, contract, audio, prep, folder: Path, suite, protocol,
                 ground_truth: Path | None):
    """Generate with evalkit's own pipeline on an ONNX Runtime provider, measuring as it goes (one streamed
    pass: pipeline.generate); returns what it generated and (its part of the entry: the session, the speed
    and what the raw outputs were, ``generated.measured`` apart: fidelity and sync)."""
    runner = OnnxRuntimeRunner(model.generator, contract, backend)
    with runner:
        generated = generate(runner, audio, prep, folder,
                             label=f"{model.name}/{backend.name}/{prep.spec.name}/{protocol.name}",
                             timing=suite.timing, keep_outputs=suite.parity.frames, protocol=protocol,
                             measuring=StreamMeasures(contract, suite.metrics, ground_truth),
                             store_full_frames=keeps_full_frames(suite), batch_size=backend.batch_size,
                             mp4=suite.mp4)
    times = generated.times
    opts = backend.session_options
    produced = dict(
        frames=generated.frames, providers_used=runner.providers_used, session_seconds=runner.activate_seconds,
        threads={"intra_op": opts.intra_op_num_threads, "inter_op": opts.inter_op_num_threads},
        stage_seconds=times.seconds, stage_cpu_seconds=times.cpu_seconds, inference_ms=times.inference_ms, warmup_ms=times.warmup_ms,
        first_inference_ms=times.warmup_ms[0] if times.warmup_ms else (times.timed_ms or [None])[0],
        timed_ms=times.timed_ms, timed_seconds=times.timed_seconds, output_stats=generated.stats.result(),
        timed_cpu_ms=times.timed_cpu_ms, timing_load=times.timing_load,
        batch_timed_ms={str(k): v for k, v in generated.batch_timings.items()},
        copy_ms=runner.copy_ms if runner.io_binding else None,
        head_inputs_sha256=generated.head_inputs_sha256,
        copy={"mouth_mse": generated.copy_mse, "psnr_db": suite.metrics.copy_psnr_db},
        mouth_sharpness=generated.sharpness,
        template_indices=generated.template_indices, pipeline_seconds=times.pipeline_seconds,
        mp4_encoding={"preset": suite.mp4.preset, "crf": suite.mp4.crf, "threads": MP4_THREADS},
    )
    return generated, produced


def _run_one(partial: Path, suite, model, contract, spec, prep, protocol, backend, audio,
             ground_truth, have: list[str], log) -> dict:
    """Generate and measure one model x backend x input x protocol; returns its entry, assembled once from its
    parts (``assemble_entry``): identity, the driving audio, the outcome, what generation produced and timed,
    what measuring found, the field's metrics."""
    identity = _identity(model, backend, spec, protocol)
    driving = {"driving_audio": audio.path.name if audio.path else None,
               "audio_features_seconds": audio.compute_seconds, "audio_seconds": audio.seconds}
    what = f"{model.name} on {backend.name} for {spec.name} ({protocol.name})"
    if backend.kind == "onnxruntime" and backend.provider not in have:
        log(f"skipped {what}: {backend.provider} not available here")
        return assemble_entry(identity, driving, {"status": "skipped",
                                                  "reason": f"not available here (available: {', '.join(have)})"})
    if backend.kind == "external" and (protocol.kind != "reconstruction" or protocol.reference != "same"
                                       or contract.template_start != 0):
        reason = ("an external backend runs its own pipeline: only the reconstruction protocol with reference same "
                  "and the contract's template walk")
        log(f"skipped {what}: {reason}")
        return assemble_entry(identity, driving, {"status": "skipped", "reason": reason})
    folder = combo_folder(model.name, backend.name, spec.name, protocol.name)
    (partial / folder).mkdir()
    stores_full = backend.kind == "external" or keeps_full_frames(suite)
    outcome = {"status": "ok", "folder": folder, "outputs": {
        "mp4": f"{folder}/{OUTPUT_MP4}", "frames_full": f"{folder}/{FRAMES_FULL}" if stores_full else None,
        "frames_inner": f"{folder}/{FRAMES_INNER}"}}
    t0 = time.perf_counter()
    if backend.kind == "external":
        produced = run_external(backend, model, prep, contract, audio.frames, partial / folder)
        produced["template_indices"] = [template_index(i, prep.video.frames, contract)
                                        for i in range(produced["frames"])]
    else:
        try:
            generated, produced = _generate_on(backend, model, contract, audio, prep, partial / folder, suite,
                                               protocol, ground_truth)
        except ProviderDidNotStart as exc:  # listed, but not usable here: as if not available, unless required
            if backend.required:
                raise
            shutil.rmtree(partial / folder)
            log(f"skipped {what}: {exc}")
            return assemble_entry(identity, driving, {"status": "skipped", "reason": str(exc)})
        np.savez_compressed(partial / folder / HEAD_OUTPUTS, outputs=generated.head_outputs)
    frames, timed = produced["frames"], {"generate_seconds": time.perf_counter() - t0}
    log(f"generated and measured {what}: {frames} frames in {timed['generate_seconds']:.1f} s")
    if backend.kind == "external":  # its own pipeline wrote files: measure them
        log(f"measuring {what} (fidelity and sync against the ground truth and the audio) ...")
        measured = measure_run(partial / folder, ground_truth, prep.boxes, produced["template_indices"], contract,
                               frames, suite.metrics, audio.wav, contract.sample_rate, template=prep.video.path)
        from evalkit.measure.field import measure_field  # the field's metrics: CPBD, LMD / identity with evalkit[face]

        field = {"field": measure_field(partial / folder, frames, produced["template_indices"], prep.boxes,
                                        prep.video.path, ground_truth, contract, suite.metrics, audio.wav,
                                        measured.get("sync"))}
    else:
        measured = dict(generated.measured)  # measured while generating (one streamed pass), the field's too
        field = {"field": measured.pop("field")}
    return assemble_entry(identity, driving, outcome, produced, timed, measured, field)
