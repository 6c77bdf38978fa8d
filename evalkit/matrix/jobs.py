"""The run matrix: one job per model x backend x input x protocol (a "combination"), each its own unit.

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

import errno
import fcntl
import json
import os
import shutil
import socket
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from evalkit.config.suite import DEFAULT_PROTOCOL, BackendSpec, LoadedSuite
from evalkit.errors import UserError
from evalkit.faults import fault_point
from evalkit.measure.outputs import measure_run
from evalkit.pipeline.external import run_external
from evalkit.pipeline.generate import compute_audio_features, generate, prepare_input, template_index
from evalkit.pipeline.runner import OnnxRuntimeRunner, ProviderDidNotStart, available_providers
from evalkit.record.io import write_json_atomic, write_text_atomic
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, HEAD_OUTPUTS, OUTPUT_MP4, PARTIAL_SUFFIX

ENTRY_JSON = "entry.json"  # a combination's finished entry (non-finite floats as JSON's Infinity/NaN: read back exactly)
TRACEBACK_TXT = "traceback.txt"  # a failed combination's traceback, when evalkit's bug failed it
STATE_JSON = "run_state.json"  # in a .partial run folder: what `evalkit run --resume` needs
STATE_KIND = "evalkit.partial_run"
LOCK_FILE = ".lock"  # in a .partial run folder: locked (flock) by the one process writing it, for its lifetime


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


@dataclass(frozen=True)
class Job:
    """One combination, by name: what a worker needs besides the suite and the run folder."""

    model: str
    backend: str
    input: str
    protocol: str

    @property
    def folder(self) -> str:
        return combo_folder(self.model, self.backend, self.input, self.protocol)

    @property
    def label(self) -> str:
        return f"{self.model} on {self.backend} for {self.input} ({self.protocol})"


def plan_jobs(suite) -> list[Job]:
    """Every combination, in the record's order: model, input, protocol, backend."""
    return [Job(m.name, b.name, i.name, p.name)
            for m in suite.models for i in suite.inputs for p in suite.protocols for b in suite.backends]


def expected_cost(suite, job: Job) -> float:
    """A rough guess of a job's length, to hand out the longest first (``longest_first``): seconds of driving
    speech (the frames it generates) times 1 + its generator's size in MB (a bigger network computes more per
    frame; below a megabyte the harness's per-frame work dominates). Only the order of dispatch depends on it."""
    import soundfile

    model, _, spec, protocol = job_specs(suite, job)
    audio = protocol_audio(suite, spec, protocol)
    try:
        try:
            seconds = soundfile.info(str(audio)).duration
        except soundfile.LibsndfileError:  # a format only ffmpeg reads (the pipeline's way): its size will do
            seconds = Path(audio).stat().st_size / 32000  # as 16 kHz 16-bit mono
        return seconds * (1 + Path(model.generator).stat().st_size / 1e6)
    except OSError:  # gone since the suite was checked: the job itself will say so
        return 0.0


def longest_first(suite, jobs: list[Job]) -> list[Job]:
    """``jobs`` in the order parallel workers should take them: the longest expected first (``expected_cost``),
    ties in the suite's order. Workers that take the long jobs first finish closer together: the classic
    longest-processing-time rule (with exact lengths, never more than 4/3 of the best schedule's), where the
    suite's order can leave one worker running the longest job alone at the end."""
    cost = {job: expected_cost(suite, job) for job in jobs}
    return sorted(jobs, key=lambda job: -cost[job])  # sorted() is stable: equal guesses keep the suite's order


def job_specs(suite, job: Job):
    """The suite's model, backend, input and protocol specs a job names."""
    def pick(items, name):
        return next(item for item in items if item.name == name)

    return (pick(suite.models, job.model), pick(suite.backends, job.backend), pick(suite.inputs, job.input),
            pick(suite.protocols, job.protocol))


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
                             ground_truth=ground_truth, metrics=suite.metrics,
                             store_full_frames=keeps_full_frames(suite), batch_size=backend.batch_size)
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
                               frames, suite.metrics, audio.wav, contract.sample_rate)
    else:
        measured = generated.measured  # measured while generating (one streamed pass)
    from evalkit.measure.field import measure_field  # the field's metrics: CPBD, and LMD / identity with evalkit[face]

    field = measure_field(partial / folder, frames, produced["template_indices"], prep.boxes, prep.video.path,
                          ground_truth, contract, suite.metrics, audio.wav, measured.get("sync"))
    return assemble_entry(identity, driving, outcome, produced, timed, measured, {"field": field})


# --- the .partial run folder: its state file, its finished entries, and stale ones ------------------------------

def write_state(partial: Path, loaded: LoadedSuite, run_id: str, created_utc: str, combinations: int,
                keep_suite_as: str | None, record: dict, finishing: dict | None = None) -> None:
    """``run_state.json``: the suite (path and SHA-256), the run, the files' facts, who is writing it, and what
    the run writes when its combinations are done (``finishing``: run.FINISHING_KEYS)."""
    write_json_atomic(partial / STATE_JSON, {"finishing": finishing or {},
        "kind": STATE_KIND, "run_id": run_id, "created_utc": created_utc,
        "suite_path": str(loaded.path), "suite_sha256": loaded.sha256, "kept_suite": keep_suite_as,
        "combinations": combinations, "host": socket.gethostname(), "pid": os.getpid(),
        "pid_started": process_started(os.getpid()), "models": record["models"], "inputs": record["inputs"],
    })


def mark_stopped(partial: Path) -> None:
    """The run writing ``partial`` has stopped (interrupted): no process owns the folder now."""
    state = json.loads((Path(partial) / STATE_JSON).read_text())
    write_json_atomic(Path(partial) / STATE_JSON, {**state, "pid": None, "pid_started": None})


def read_state(partial: Path) -> dict:
    path = Path(partial) / STATE_JSON
    if not Path(partial).is_dir():
        raise UserError(f"--resume {partial}: folder not found (give a .<run-id>.partial run folder)")
    if not path.is_file():
        raise UserError(f"--resume {partial}: no {STATE_JSON} in it: not an unfinished run folder of this evalkit "
                        "(list them with `evalkit runs partial DIR`)")
    state = json.loads(path.read_text())
    if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
        raise UserError(f"{path}: not an evalkit run state (kind {STATE_KIND!r} expected)")
    return state


def finished_entries(partial: Path) -> dict[str, dict]:
    """The entries with status ok kept in a .partial folder, by combination folder."""
    found = {}
    for path in sorted(Path(partial).glob(f"*/{ENTRY_JSON}")):
        entry = json.loads(path.read_text())
        if entry.get("status") == "ok":
            found[path.parent.name] = entry
    return found


@dataclass(frozen=True)
class PartialRun:
    """An unfinished run folder: where, how old (since it last changed), how far, whether its writer lives."""

    path: Path
    age_seconds: float
    finished: int
    combinations: int | None
    running: bool


def process_started(pid: int) -> str | None:
    """When process ``pid`` started: this boot's id and the process's start time in clock ticks since boot
    (field 22 of /proc/PID/stat). With the pid, it names one process: a pid is reused once its process is gone.
    None where there is no such process or no /proc to ask."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError, TypeError):
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # fields from the 3rd, after the name (which may hold ')')


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


class RunLock:
    """The lock on a ``.partial`` run folder's LOCK_FILE: one owner per run folder. Held (``fcntl.flock``) from
    the moment a run or a resume claims the folder until it stops; the kernel releases it when its process
    ends, however it ends (SIGKILL included), so a lock that can be taken means no process is writing."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self.fd = Path(folder), fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the lock
            self.fd = None

    def forget_file(self, folder: Path) -> None:
        """The run is complete in ``folder`` (its final name): remove the lock file there, then release."""
        try:
            (Path(folder) / LOCK_FILE).unlink()
        except FileNotFoundError:
            pass
        self.release()


def claim(folder: Path) -> RunLock | None:
    """Lock ``folder`` (a .partial run folder) for this process; None when another process holds it.
    FileNotFoundError when the folder is gone, or went once locked (a run that held it completed and renamed it:
    the file locked must still be the folder's own)."""
    folder = Path(folder)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    for attempt in range(3):  # `runs partial` takes a shared lock for a moment to look: look again after it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 2:
                os.close(fd)
                return None
            time.sleep(0.05)
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(folder / LOCK_FILE))
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "the run folder was completed or removed meanwhile", str(folder))
    return RunLock(folder, fd)


def locked(folder: Path) -> bool | None:
    """Whether a process holds ``folder``'s lock now (True), none does (False), or the folder has no lock file
    (None: made by an evalkit before the lock)."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def writer_running(state: dict) -> bool:
    """Whether the process that wrote a run_state.json is still running, on this machine: its pid lives and, where
    the state recorded when that process started, it is the same process (not another one given the same pid)."""
    if state.get("host") != socket.gethostname() or not _alive(state.get("pid")):
        return False
    started = state.get("pid_started")
    return started is None or process_started(state["pid"]) in (None, started)


def partial_runs(where: Path) -> list[PartialRun]:
    """The .partial folders in ``where`` (a suite's folder) or one level below (an output folder)."""
    where = Path(where)
    folders = sorted({*where.glob(f".*{PARTIAL_SUFFIX}"), *where.glob(f"*/.*{PARTIAL_SUFFIX}")})
    now, found = time.time(), []
    for folder in folders:
        if not folder.is_dir():
            continue
        state = {}
        try:
            state = json.loads((folder / STATE_JSON).read_text())
        except (OSError, ValueError):
            pass
        stamps = [p.stat().st_mtime for p in (folder, *folder.glob(f"*/{ENTRY_JSON}")) if p.exists()]
        held = locked(folder)  # the lock says; a folder without one (an older evalkit's) by its writer's pid
        running = held if held is not None else writer_running(state)
        found.append(PartialRun(folder, now - max(stamps), len(finished_entries(folder)),
                                state.get("combinations"), running))
    return found
