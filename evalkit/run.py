"""Running a suite: every model x backend x input x protocol, into one self-describing run folder.

A run folder ``<out>/<suite-name>/<run-id>/`` holds ``run.json`` (the record:
suite and its SHA-256, model and input hashes, versions, machine, and per
model x backend x input the status, frame count and timings) and one folder
per model x backend x input with the MP4 and the lossless generated frames.

The folder is written as ``.<run-id>.partial`` and renamed when complete, so
an interrupted or failed run never looks complete. Each combination is a job
(evalkit/matrix/jobs.py) run by an executor (evalkit/matrix/executors.py: here, in
worker processes, or on Ray); its entry is kept in its folder as it finishes,
so an interrupted run can be completed (``resume_run``).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from evalkit.measure.parity import add_parity, compare_with_golden, golden_items
from evalkit.record import io
from evalkit.record.environment import content_sha256, machine_info, versions
from evalkit.measure.golden import save_golden
from evalkit.ci.history import HISTORY_DB, HistoryBusy, record_run
from evalkit.errors import UserError
from evalkit.progress import Steps
from evalkit.faults import fault_point
from evalkit.matrix.executors import Executor, default_workers, execute, start_fork_server
from evalkit.pipeline.generate import check_protocol, prepare_input
from evalkit.ci.baseline import load_baseline
from evalkit.ci.gates import evaluate_gates, needs_baseline
from evalkit.record.layout import PARTIAL_SUFFIX, RUN_RECORD
from evalkit.record.schema import RECORD_KIND, RECORD_SCHEMA_VERSION, BaselineFacts, RunEntry, RunRecord
from evalkit.record.verdict import add_verdicts
from evalkit.record.summary import json_safe, load_run, summary_row  # noqa: F401 (load_run: re-exported)
from evalkit.measure.view_assets import make_view_assets
from evalkit.report import render_run
from evalkit.pipeline.audio import load_audio
from evalkit.pipeline.audio_encoder import check_audio_encoder, load_features
from evalkit.measure.outputs import template_truth_note
from evalkit.ci.targets import check_targets
from evalkit.media.ffmpeg import probe_video
from evalkit.pipeline.mel import mel_frame_count, video_frame_count
from evalkit.pipeline.runner import OnnxRuntimeRunner, available_providers
from evalkit.media.decode import check_decodes, decoded_once
from evalkit.config.suite import BackendSpec, LoadedSuite, SessionOptions, SuiteError, cross_check, load_suite
from evalkit.files import same_file
from evalkit.matrix.jobs import (WORKER_DIED, combo_folder, claim, finished_entries, mark_stopped,  # noqa: F401 (re-exported)
                                one_blas_thread, plan_jobs, protocol_audio, read_state, write_state, writer_running)


class RequiredBackendMissing(UserError):
    """A backend marked ``required`` cannot run here: the run fails (exit 1)."""

    exit_code = 1


class RunNotFinished(UserError):
    """A worker process died with a combination (killed by the out-of-memory killer, say): the others are kept
    in the .partial folder, which ``--resume`` finishes by running the lost ones again (exit 1)."""

    exit_code = 1


FINISHING_KEYS = ("save_golden", "junit", "summary_md", "signoff")
"""What a run writes when its combinations are done, besides its folder (kept in run_state.json, so that a
resume finishes it as the run would have): golden outputs, JUnit XML, Markdown summary, sign-off
(``{"model", "model_name", "key"}``)."""


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON under a temporary name, then rename: a reader never sees half a file (record.io's helper)."""
    io.write_json_atomic(path, data)


def preflight(loaded: LoadedSuite, notes: list[str] | None = None) -> tuple[dict, dict | None]:
    """Check everything that can be checked before generating anything; returns the prepared inputs
    and the baseline record (when a gate needs one).

    Cheap but thorough: every template and ground-truth video is decoded once (a file cut short or damaged
    in the middle is caught here, not filled in by the template walk), every generator and audio encoder is
    loaded and its input and output shapes and dtypes checked, every audio file is read and the frame count
    it drives compared with the ground truth's. Raises SuiteError (a UserError, exit 2) listing every problem
    found, RequiredBackendMissing (exit 1) for a required provider that this machine lacks. ``notes``, when
    given, gets a line for each thing the run will do that the user should know (a ground truth that is the
    template itself, compared on its first frames only).
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
    wavs: dict = {}
    reads = _frames_read(suite, wavs)
    for spec in suite.inputs:
        for role, path in (("input '%s': template video" % spec.name, spec.video),
                           ("input '%s': ground truth" % spec.name, spec.ground_truth)):
            if path is not None and path not in videos:
                videos[path] = _collect(problems, _decodable_video, path, role, reads.get(path))
    prepared = {}
    for model in suite.models:
        contract = suite.contract_for(model)
        _collect(problems, _check_generator, model, contract, check_backend, suite.backends)
        if model.audio_encoder is not None:
            _collect(problems, check_audio_encoder, model.audio_encoder, contract)
        for protocol in suite.protocols:  # a dubbing protocol's own speech, read now (not when its run starts)
            if protocol.kind != "reconstruction" and protocol.audio is not None:
                _collect(problems, _driven_frames, protocol.audio, contract, wavs, f"protocol '{protocol.name}': ")
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
                note = _collect(problems, _check_ground_truth, spec, videos[spec.ground_truth], prep.video,
                                _output_frames(frames, contract), suite.metrics.trim_to_shortest, contract)
                if note and notes is not None and f"input '{spec.name}': {note}" not in notes:
                    notes.append(f"input '{spec.name}': {note}")
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


def _check_generator(model, contract, check_backend: BackendSpec, backends) -> None:
    """The generator loads and fits the contract; a backend that batches needs a dynamic batch axis."""
    runner = OnnxRuntimeRunner(model.generator, contract, check_backend).activate()
    runner.deactivate()
    for backend in backends:
        if backend.kind == "onnxruntime" and backend.batch_size > 1 and not runner.dynamic_batch:
            raise UserError(f"backend '{backend.name}': batch_size {backend.batch_size}, but model '{model.name}' "
                            f"({model.generator}) has a fixed batch axis of 1 (export it with a dynamic batch axis, "
                            "or set batch_size: 1)")


def _decodable_video(path: Path, role: str, frames: int | None = None):
    info = probe_video(path)
    # every frame is decoded and checked; inside decoded_once, the first ``frames`` (None: all) are kept for the
    # run's readers
    check_decodes(info, role, keep=True, keep_frames=frames)
    return info


def _frames_read(suite, wavs: dict) -> dict[Path, int]:
    """How many leading frames of each input video the run reads, where that is known before the videos are
    probed: the template walk of a plain reconstruction (``reference: same``, ``template_start`` 0) reads template
    frames 0..N-1 for N output frames, or every frame where N exceeds them (the walk turns back: the decoded file
    then holds them all); a ground truth is read on the output's frames. A video that any other combination reads
    (a dubbing protocol, a distant reference, a later start, precomputed features, an external backend), or whose
    audio does not read, is absent: all of its frames are kept. Errors are reported by preflight's own checks."""
    simple = (all(p.kind == "reconstruction" and p.reference == "same" for p in suite.protocols)
              and all(b.kind == "onnxruntime" for b in suite.backends))
    reads: dict[Path, int] = {}
    unknown: set[Path] = set()
    for model in suite.models:
        contract = suite.contract_for(model)
        plain = simple and model.audio_features is None and contract.template_start == 0
        for spec in suite.inputs:
            paths = [p for p in (spec.video, spec.ground_truth) if p is not None]
            frames = None
            if plain:
                try:
                    frames = _output_frames(_driven_frames(spec.audio, contract, wavs), contract)
                except UserError:
                    frames = None
            for path in paths:
                if frames is None:
                    unknown.add(path)
                else:
                    reads[path] = max(reads.get(path, 0), frames)
    return {path: frames for path, frames in reads.items() if path not in unknown}


def _driven_frames(audio: Path, contract, wavs: dict, where: str = "") -> int:
    """Video frames the audio drives (the mel windows: mel.mel_windows_for_frames' count)."""
    key = (audio, contract.sample_rate)
    if key not in wavs:
        try:
            wavs[key] = load_audio(audio, contract.sample_rate)
        except UserError as exc:
            raise UserError(f"{where}{exc}") from None
    mel_frames = mel_frame_count(len(wavs[key]), contract)  # counted, not computed
    if mel_frames < contract.mel_window:
        seconds = (contract.mel_window - 1) * contract.hop_length / contract.sample_rate
        raise UserError(f"{where}audio {audio}: the audio gives {mel_frames} mel frames, fewer than one window of "
                        f"{contract.mel_window} (it must be at least {seconds:.3f} s long)")
    return video_frame_count(mel_frames, contract)


def _output_frames(windows: int, contract) -> int:
    """Frames a run generates from ``windows`` mel windows (pipeline.compute_audio_features' rule)."""
    if getattr(contract, "frame_count", None) == "padded_features":
        return windows + 2 * contract.feature_pad_repeat
    return windows


def _check_ground_truth(spec, truth, template, frames: int, trim: bool, contract) -> str | None:
    """The ground truth must be the output's size, and (unless trimming) as long as the output; a ground truth
    that is the template itself may be longer (the run re-draws its first frames): returns the note that says
    what is compared then (measure.outputs.template_truth_note), else None."""
    if (truth.width, truth.height) != (template.width, template.height):
        raise UserError(f"input '{spec.name}': ground truth {spec.ground_truth} is {truth.width}x{truth.height}, "
                        f"the output will be {template.width}x{template.height} (the template's size)")
    if same_file(spec.ground_truth, spec.video) and contract.template_start == 0 and frames < truth.frames:
        return template_truth_note(spec.ground_truth, truth.frames, frames)
    if truth.frames != frames and not trim:
        raise UserError(f"input '{spec.name}': ground truth {spec.ground_truth} has {truth.frames} frames, the "
                        f"run will generate {frames} (as many as the audio {spec.audio} drives); set "
                        "metrics.trim_to_shortest: true to compare the first min(N) frames")
    return None


def _file_facts(path: Path | None) -> dict | None:
    """Where an input was and what identifies its content (a file's, a folder's or a frame list's frames').

    An image folder read as a video (a dataset's frames, ``video: DIR``) is recorded as that folder, with the
    frame list evalkit read it through (in its cache) as ``frame_list``."""
    from evalkit.config.dataset import frame_list_folder, is_frame_list

    if path is None:
        return None
    if is_frame_list(path):
        return {"path": str(frame_list_folder(path)), "sha256": content_sha256(path), "frame_list": str(path)}
    return {"path": str(path), "sha256": content_sha256(path)}


def run_suite(loaded: LoadedSuite, out: Path | None = None, log=print, save_golden_to: Path | None = None,
              keep_suite_as: str | None = None, workers: int | None = None, executor: Executor = "local",
              ray_address: str | None = None, finishing: dict | None = None, warn=None) -> Path:
    """Run every model x backend x input x protocol of the suite; returns the finished run folder.

    With ``save_golden_to``, the raw outputs of each model x input are also saved there as a golden set.
    With ``keep_suite_as`` (a file name), the suite's text is written into the run folder under that name and
    the record names that copy as the suite's path (a suite made on the command line, from a temporary file).
    ``workers``: local worker processes (default: what fits this machine, executors.default_workers);
    ``executor`` "ray" runs each combination as a task on the Ray cluster at ``ray_address``.
    A combination that fails is recorded as failed (matrix.jobs.failed_entry); the others run on.
    Each input video is decoded once, by preflight (media.decode.decoded_once).
    ``finishing``: what else the run writes before its folder takes its final name (FINISHING_KEYS); kept in
    the .partial folder's state, so that ``resume_run`` finishes an interrupted run as it would have finished.
    ``warn``: where a warning line goes (a busy history database; default ``log``).
    """
    finishing = _finishing(finishing, save_golden_to)
    with decoded_once(), one_blas_thread():
        return _run_suite(loaded, out, log, keep_suite_as, workers, executor, ray_address, finishing, warn or log)


def _finishing(finishing: dict | None, save_golden_to: Path | None) -> dict:
    finishing = {key: value for key, value in (finishing or {}).items() if value is not None}
    unknown = set(finishing) - set(FINISHING_KEYS)
    if unknown:
        raise TypeError(f"finishing: unknown keys {sorted(unknown)} (known: {', '.join(FINISHING_KEYS)})")
    if save_golden_to is not None:
        finishing["save_golden"] = save_golden_to
    return {key: (_resolved(value, key) if key != "signoff" else value) for key, value in finishing.items()}


def _resolved(value, key: str) -> str:
    """A finishing target's absolute path; a path that cannot be followed is the user's (exit 2)."""
    try:
        return str(Path(value).resolve())
    except (RuntimeError, OSError) as exc:  # a loop of symbolic links (RuntimeError before Python 3.13)
        why = "a loop of symbolic links" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40 \
            else (exc.strerror or type(exc).__name__)
        raise UserError(f"--{key.replace('_', '-')} {value}: cannot be followed ({why}); fix the links or choose "
                        "another path") from None


def _run_suite(loaded: LoadedSuite, out: Path | None, log, keep_suite_as: str | None, workers: int | None,
               executor: Executor, ray_address: str | None, finishing: dict, warn) -> Path:
    suite = loaded.suite
    start_fork_server(suite, workers, executor, len(plan_jobs(suite)))  # the workers' imports, beside preflight
    notes: list[str] = []
    prepared, baseline = preflight(loaded, notes)
    base = Path(out) if out is not None else (suite.output_dir or Path.cwd() / "reports")
    check_targets(finishing, base / HISTORY_DB)  # before the run, not after it
    run_id = new_run_id()
    final = base / suite.name / run_id
    partial = base / suite.name / f".{run_id}{PARTIAL_SUFFIX}"
    partial.mkdir(parents=True)
    lock = claim(partial)  # a new folder: nobody else can hold it
    try:
        fault_point("claimed")
        if keep_suite_as:
            (partial / keep_suite_as).write_text(loaded.text)
        record = _new_record(loaded, run_id, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             final / keep_suite_as if keep_suite_as else loaded.path, prepared)
        write_state(partial, loaded, run_id, record["created_utc"], len(plan_jobs(suite)), keep_suite_as, record,
                    finishing)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        lock.release()
        raise
    for note in notes:  # once the run has started: a run refused at its folder says only why
        log(note)
    return _complete(loaded, record, partial, baseline, {}, log, workers, executor, ray_address, finishing, lock,
                     warn)


def resume_run(partial: Path, log=print, save_golden_to: Path | None = None, workers: int | None = None,
               executor: Executor = "local", ray_address: str | None = None, finishing: dict | None = None,
               warn=None) -> Path:
    """Complete an interrupted run folder (``.<run-id>.partial``): its combinations with status ok are kept,
    the others run; then parity, gates, report, the finishing steps the run was started with (its state's
    ``finishing``, with ``finishing`` and ``save_golden_to`` added or replacing them: golden outputs, JUnit,
    Markdown, sign-off) and the rename, as a normal run. The folder is claimed first (its lock): a folder that
    another process is writing is refused. The suite must be the one the run started with (same SHA-256), and
    so must the model and input files (UserError otherwise)."""
    finishing = _finishing(finishing, save_golden_to)
    with decoded_once(), one_blas_thread():
        return _resume_run(Path(partial), log, workers, executor, ray_address, finishing, warn or log)


def _resume_run(partial: Path, log, workers: int | None, executor: Executor, ray_address: str | None,
                finishing: dict, warn) -> Path:
    state = read_state(partial)
    run_id = state["run_id"]
    try:
        lock = claim(partial)  # before anything else: one owner per run folder
    except FileNotFoundError:
        raise UserError(f"--resume {partial}: folder not found: another evalkit process completed or removed it "
                        "meanwhile (list the unfinished ones with `evalkit runs partial`)") from None
    if lock is None:
        raise UserError(f"--resume {partial}: run {run_id} is being written by another evalkit process (it holds "
                        "the folder's lock); wait for it to finish, or stop it (Ctrl-C) and resume then")
    try:
        fault_point("claimed")
        state = read_state(partial)  # as the last owner left it
        if writer_running(state):  # a writer from before the lock (an older evalkit's), alive
            raise UserError(f"--resume {partial}: run {run_id} is still running (process {state['pid']} on this "
                            "machine); wait for it to finish, or stop it (Ctrl-C) and resume then")
        if partial.name != f".{run_id}{PARTIAL_SUFFIX}":
            raise UserError(f"--resume {partial}: run {run_id}'s folder is named .{run_id}{PARTIAL_SUFFIX} (renamed "
                            "folders cannot be resumed)")
        finishing = {**state.get("finishing", {}), **finishing}
        kept = state["kept_suite"]
        loaded = load_suite(partial / kept if kept else Path(state["suite_path"]))
        if loaded.sha256 != state["suite_sha256"]:
            raise UserError(f"--resume {partial}: the suite {loaded.path} changed since run {run_id} started "
                            f"(SHA-256 {state['suite_sha256'][:12]}... then, {loaded.sha256[:12]}... now); start a "
                            f"new run with `evalkit run {loaded.path}`")
        if finishing.get("signoff"):  # a sign-off's run: the suite with the model signed off
            from evalkit.ci.signoff import load_private_key, with_model

            signoff = finishing["signoff"]
            loaded = with_model(loaded, Path(signoff["model"]), signoff.get("model_name"))
            if signoff.get("key"):
                load_private_key(Path(signoff["key"]))  # now, not after the run
        prepared, baseline = preflight(loaded)
        check_targets(finishing, partial.parent.parent / HISTORY_DB)
        final = partial.parent / run_id
        record = _new_record(loaded, run_id, state["created_utc"], final / kept if kept else loaded.path, prepared)
        check_unchanged(partial, state, record)
        write_state(partial, loaded, run_id, state["created_utc"], state["combinations"], kept, record,
                    finishing)  # now ours
    except BaseException:
        lock.release()
        raise
    done = finished_entries(partial)
    log(f"resuming run {run_id}: {len(done)} of {state['combinations']} combinations already finished")
    return _complete(loaded, record, partial, baseline, done, log, workers, executor, ray_address, finishing, lock,
                     warn)


def recorded_files(record: dict) -> Iterator[tuple[str, str, str, dict]]:
    """(group, name, role, facts) for every model and input file (and landmark folder) a record names with its
    content hash: group "models" or "inputs", e.g. ("models", "reference", "generator", {"path", "sha256"})."""
    for group in ("models", "inputs"):
        for name, facts in record[group].items():
            for role, fact in facts.items():
                if isinstance(fact, dict) and "sha256" in fact:
                    yield group, name, role, fact


def check_unchanged(partial: Path, state: dict, record: dict) -> None:
    """Every model and input file (and landmark folder) a resumed run reads must be what the run started with:
    the same content hash in ``state`` (run_state.json) as in the fresh ``record`` head; UserError otherwise."""
    for group, name, role, now in recorded_files(record):
        then = state[group].get(name, {}).get(role)
        if (then if isinstance(then, dict) else {}).get("sha256") != now["sha256"]:
            raise UserError(f"--resume {partial}: {group[:-1]} '{name}': {role} {now['path']} changed since "
                            f"run {state['run_id']} started; start a new run")


def _new_record(loaded: LoadedSuite, run_id: str, created_utc: str, suite_path: Path, prepared: dict) -> dict:
    """The record's head: the run, the suite, this machine, and the facts (hashes) of every model and input."""
    suite = loaded.suite
    record = {
        "schema_version": RECORD_SCHEMA_VERSION,
        "kind": RECORD_KIND,
        "run_id": run_id,
        "created_utc": created_utc,
        "suite": {"name": suite.name, "path": str(suite_path), "sha256": loaded.sha256,
                  "definition": suite.model_dump(mode="json")},
        "machine": machine_info(),
        "versions": versions(),
        "available_providers": available_providers(),
        "models": {},
        "inputs": {},
        "runs": [],
    }
    hashed: dict = {}  # each file hashed once (the ground truth is often the template, one encoder many models')

    def facts(path: Path | None) -> dict | None:
        if path not in hashed:
            hashed[path] = _file_facts(path)
        return dict(hashed[path]) if hashed[path] else None  # a copy: entries stay independent

    for spec in suite.inputs:
        video = prepared[(suite.models[0].name, spec.name)].video
        record["inputs"][spec.name] = {
            "video": facts(spec.video), "audio": facts(spec.audio),
            "crop_boxes": facts(spec.crop_boxes),
            "landmarks": facts(spec.landmarks),
            "ground_truth": facts(spec.ground_truth),
            "video_frames": video.frames, "fps": video.fps, "size": [video.width, video.height],
        }
    for model in suite.models:
        record["models"][model.name] = {
            "generator": facts(model.generator), "audio_encoder": facts(model.audio_encoder),
            "audio_features": facts(model.audio_features),
            "contract": suite.contract_for(model).model_dump(mode="json"),
        }
    return record


def _complete(loaded: LoadedSuite, record: dict, partial: Path, baseline: RunRecord | None, done: dict[str, dict], log,
              workers: int | None, executor: Executor, ray_address: str | None, finishing: dict, lock,
              warn) -> Path:
    """Run the combinations not ``done`` (entries by folder), then parity, gates, the record, the report, the
    finishing steps (history, JUnit/Markdown, golden outputs, sign-off: ``_finish``) and, last, the rename of
    ``partial`` to the run's final name, with SIGINT and SIGTERM deferred until it is done. So the final name
    means finished, history included, and anything before it is in ``partial``, which ``--resume`` finishes.

    Interrupted after a combination finished, or a worker died with one (RunNotFinished): ``partial`` is kept
    and marked stopped (the exception carries it as ``partial_run``, with ``partial_progress`` and
    ``resume_command``); interrupted after the rename, the exception carries the finished folder as
    ``completed_run``; otherwise, or on an error before every combination finished, ``partial`` is removed.
    ``lock`` (the folder's, claimed by the caller) is released in every case."""
    suite = loaded.suite
    base = partial.parent.parent
    final = partial.parent / record["run_id"]
    jobs = plan_jobs(suite)
    entries = {job: done[job.folder] for job in jobs if job.folder in done}
    todo = [job for job in jobs if job not in entries]
    progress = Steps(len(jobs), "run", log, already=len(entries))  # its clock: the record's wall_seconds
    stage = "combinations"
    steps = {}  # the finishing steps this run takes, each True once done (``_finish``)
    try:
        with closing(execute(loaded, todo, partial, workers or default_workers(suite), executor, ray_address,
                             log)) as results:
            for job, entry in results:
                entries[job] = entry
                progress.step(f"{job.key.full}, {entry['status']}")
        lost = [job for job in jobs if entries[job].get("errors") == WORKER_DIED]
        if lost:
            raise RunNotFinished(
                f"{_lost_list(lost, entries)}; the {len(jobs) - len(lost)} other combinations ran and are kept in "
                f"{partial}; run {'them' if len(lost) > 1 else 'it'} again with: {resume_command(partial, finishing)}")
        runs = [RunEntry.model_validate({**json_safe(entries[job]), "summary": {}}) for job in jobs]  # row: below
        failed = [e for e in runs if e.status == "failed"]
        if failed:
            log(f"{len(failed)} of {len(jobs)} combinations FAILED; the others ran (see their reasons in the record)")
        stage = "report"
        progress.phase("comparing backends (parity) ...")
        parity = add_parity(runs, suite, partial, log=log)
        typed = RunRecord.model_validate({**json_safe(record), "runs": runs, "parity": parity})  # assembled once
        if suite.golden is not None:
            compare_with_golden(typed, suite, partial)
        for entry in typed.runs:
            entry.summary = summary_row(entry, typed.baseline_parity(entry))
        if suite.gates:
            results = evaluate_gates(typed, suite.gates, baseline)
            typed.gates = [r.to_dict() for r in results]
            typed.gates_passed = all(results)
            if baseline is not None:
                typed.baseline = BaselineFacts(run_id=baseline.run_id, suite=baseline.suite.name,
                                               machine=baseline.machine)
        add_verdicts(typed)  # each run's verdict, after its summary and the gates
        typed.finished_utc = datetime.now(timezone.utc).isoformat(timespec="seconds")
        typed.wall_seconds = progress.elapsed()
        stored = typed.to_json_dict()
        checked = RunRecord.model_validate(stored)  # what evalkit writes always loads
        write_json_atomic(partial / RUN_RECORD, stored)
        progress.phase("writing the report (summary.csv, frames.csv, report.html) ...")
        make_view_assets(partial, checked, log=log)
        render_run(partial, checked, log=log)
        stage = "finishing"
        _finish(loaded, checked, partial, final, base / HISTORY_DB, finishing, log, warn, steps)
        fault_point("finishing")
        with signals_deferred():  # the rename and what says it happened: a signal waits until both are done
            partial.rename(final)
            fault_point("renamed")  # here, without the deferral, the signal would find the run half renamed
            stage = "renamed"
            lock.forget_file(final)
    except BaseException as exc:
        if stage == "renamed":  # complete: a signal that arrived during the rename is told after it
            exc.completed_run = final
            raise
        finished = len(finished_entries(partial)) if partial.is_dir() else 0
        interrupted = not isinstance(exc, Exception)
        if (interrupted and (finished or stage != "combinations")) or isinstance(exc, RunNotFinished) or (
                stage == "finishing" and isinstance(exc, UserError)):
            mark_stopped(partial)
            exc.partial_run = partial
            exc.partial_progress = (finished, len(jobs))
            exc.partial_stage = stage
            exc.finishing_steps = steps
            exc.resume_command = resume_command(partial, finishing)
        else:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        lock.release()
    return final


def _lost_list(lost: list, entries: dict) -> str:
    return "; ".join(f"{job.key.full}: {entries[job]['reason']}"
                     for job in lost)


def resume_command(partial: Path, finishing: dict) -> str:
    """The command that finishes ``partial`` (a sign-off's run: as a sign-off, printing its verdict)."""
    return f"evalkit {'signoff' if finishing.get('signoff') else 'run'} --resume {partial}"


def _finish(loaded: LoadedSuite, checked: RunRecord, partial: Path, final: Path, db: Path,
            finishing: dict, log, warn, steps: dict) -> None:
    """The finishing steps, into ``partial`` or beside it, naming the run by its ``final`` folder: the history
    entry, JUnit XML and Markdown summary, golden outputs, sign-off. Each can be done again (a resume does).
    ``steps``: each step this run takes, by name, False until it is done (what an interruption's message tells)."""
    wanted = (("the history entry", True), ("the JUnit XML", finishing.get("junit")),
              ("the Markdown summary", finishing.get("summary_md")),
              ("the golden outputs", finishing.get("save_golden")), ("the sign-off", finishing.get("signoff")))
    steps.update({name: False for name, asked in wanted if asked})
    log(f"recording the run in {db} ...")
    try:
        record_run(db, checked, final, log=log)
        steps["the history entry"] = True
    except HistoryBusy as exc:  # the run stands; its run.json keeps what the entry needs
        warn(f"evalkit: warning: {exc}")
    write_ci_files(checked, final, finishing)
    steps.update({name: True for name in ("the JUnit XML", "the Markdown summary") if name in steps})
    if finishing.get("save_golden"):
        items = golden_items(checked, partial)
        save_golden(Path(finishing["save_golden"]), items)
        steps["the golden outputs"] = True
        log(f"saved golden outputs of {len(items)} model x input pairs to {finishing['save_golden']}")
    if finishing.get("signoff"):
        from evalkit.ci.signoff import build_signoff, load_private_key, write_signoff

        signoff = finishing["signoff"]
        key = load_private_key(Path(signoff["key"])) if signoff.get("key") else None
        write_signoff(build_signoff(loaded, Path(signoff["model"]), final, load_run(partial), key), partial)
        steps["the sign-off"] = True


def write_ci_files(record: RunRecord, run_dir: Path, finishing: dict) -> None:
    """The JUnit XML (``finishing["junit"]``) and Markdown summary (``finishing["summary_md"]``) of a finished
    record, whose folder is (or will be, once renamed) ``run_dir``."""
    if not (finishing.get("junit") or finishing.get("summary_md")):
        return
    from evalkit.ci.gates import junit_xml, summary_markdown
    from evalkit.record.io import write_text_atomic

    results, gated = gate_results(record)
    for key, text in (("junit", lambda: junit_xml(record.suite.name, results, record)),
                      ("summary_md", lambda: summary_markdown(record.suite.name, str(run_dir), results,
                                                              record, gated=gated))):
        if finishing.get(key):
            Path(finishing[key]).parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(Path(finishing[key]), text())


def gate_results(record: RunRecord) -> tuple[list, bool]:
    """The verdict's results of a finished record, and whether it had gates: its gates, or without gates the
    run checks (each run ran, with finite metrics); a failed combination is a failed run check either way."""
    from evalkit.ci.gates import GateResult, run_checks

    if record.gates is None:
        return run_checks(record.runs), False
    return [GateResult(**g.model_dump()) for g in record.gates] + run_checks(
        [e for e in record.runs if e.status == "failed"]), True


@contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """SIGINT and SIGTERM that arrive inside are held, and delivered (to the handlers as they were) on leaving:
    the steps inside happen all or not at all. Python runs signal handlers in the main thread only: elsewhere
    this defers nothing, as it need not."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, lambda number, frame: held.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if held:
            signal.raise_signal(held[0])
