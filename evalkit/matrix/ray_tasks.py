"""The Ray executor: each combination a task on a Ray cluster; its files travel through Ray, not by path.

The driver (the machine that started the run) reads every file a job needs (generator, audio encoder or
features, template video, audio, crop boxes or landmarks, ground truth, the SyncNet models; a dataset's or an
image folder's frames, through the frame list that names them) once, puts each
into the object store (``ray.put`` of its bytes, once per file however many jobs use it), and starts one task
per job with the references. The task writes them into a temporary folder on its node, points the suite at
those copies, runs the job (jobs.run_job) into a temporary run folder, and returns the entry and the
bytes of every file it wrote; the driver writes them into the one run folder on its own disk.

A task asks for the backend's intra-op threads as CPUs (1 when unset) and one GPU for a CUDA or TensorRT
backend. Ray is an optional extra (``pip install "evalkit[ray]"``): it is imported here only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel

from evalkit.config.dataset import frame_list_files, is_frame_list
from evalkit.config.suite import LoadedSuite
from evalkit.errors import UserError
from evalkit.matrix.combinations_bar import CombinationsBar
from evalkit.record.io import write_bytes_atomic
from evalkit.matrix.jobs import (ENTRY_JSON, Job, failed_entry, job_specs, protocol_audio, run_job, skipped_entry,
                                write_entry)

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def require_ray():
    """The ray module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError('--executor ray needs Ray, an optional extra of evalkit: pip install "evalkit[ray]"') from None
    return ray


def job_files(suite, job: Job) -> list[Path]:
    """Every file or folder the job reads, once each."""
    model, _, spec, protocol = job_specs(suite, job)
    paths = [model.generator, model.audio_encoder, model.audio_features, spec.video, spec.audio, spec.crop_boxes,
             spec.landmarks, protocol_audio(suite, spec, protocol),
             spec.ground_truth if protocol.kind == "reconstruction" else None]
    if suite.metrics.syncnet is not None:
        paths += [suite.metrics.syncnet.video_model, suite.metrics.syncnet.audio_model]
    return list(dict.fromkeys(Path(p) for p in paths if p is not None))


def with_paths(value, mapping: dict[Path, Path]):
    """``value`` (a suite or any part of it) with every path in ``mapping`` replaced by its copy."""
    if isinstance(value, Path):
        return mapping.get(value, value)
    if isinstance(value, BaseModel):
        update = {}
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = with_paths(old, mapping)
            if new is not old:
                update[name] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, (list, tuple)):
        items = [with_paths(v, mapping) for v in value]
        return type(value)(items) if any(a is not b for a, b in zip(items, value)) else value
    return value


def _put(ray, path: Path) -> tuple[list[tuple[str, object]], int]:
    """An input into the object store: (path in the task's folder for this input, reference) per file, and the
    bytes shipped. A file is itself; a folder (landmarks) its files; a frame list (a dataset's frames or a
    folder of frame images, read through an ffconcat list in a local cache) the list and every image it names,
    at the relative paths the list names them by, so that the list reads the same on the node."""
    if path.is_dir():
        files = [(f"{path.name}/{p.relative_to(path).as_posix()}", p) for p in sorted(path.rglob("*")) if p.is_file()]
    elif is_frame_list(path):
        files = [(path.name, path)] + [(name, path.parent / name) for name in frame_list_files(path)]
    else:
        files = [(path.name, path)]
    parts, size = [], 0
    for relative, file in files:
        data = file.read_bytes()
        size += len(data)
        parts.append((relative, ray.put(data)))
    return parts, size


def _job_task(loaded: LoadedSuite, job: Job, shipment: list[tuple[str, list[tuple[str, object]]]]) -> dict:
    """On a Ray worker: the job's files from the object store into a temporary folder, the job run there;
    returns its entry and every file it wrote (path in its combination folder -> bytes)."""
    import ray

    with tempfile.TemporaryDirectory(prefix="evalkit-ray-") as tmp:
        tmp = Path(tmp)
        mapping = {}
        for i, (original, parts) in enumerate(shipment):
            base = tmp / "inputs" / str(i)
            datas = ray.get([ref for _, ref in parts])
            for (relative, _), data in zip(parts, datas):
                target = base / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            mapping[Path(original)] = base / Path(original).name
        here = loaded.model_copy(update={"suite": with_paths(loaded.suite, mapping)})
        run_dir = tmp / "run"
        run_dir.mkdir()
        entry = run_job(here, job, run_dir)
        folder = run_dir / job.folder
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return {"entry": entry, "files": files, "node": ray.util.get_node_ip_address(),
                "inputs_from_object_store": len(mapping)}


def _resources(backend) -> dict:
    threads = backend.session_options.intra_op_num_threads
    return {"num_cpus": threads or 1,
            "num_gpus": 1 if backend.kind == "onnxruntime" and backend.provider in GPU_PROVIDERS else 0}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """A task's files into the combination folder; entry.json last (a kept entry's files are all there)."""
    for relative in sorted(files, key=lambda r: r == ENTRY_JSON):
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, files[relative])


def run_on_ray(loaded: LoadedSuite, jobs: list[Job], run_dir: Path, address: str | None,
               log) -> Iterator[tuple[Job, dict]]:
    ray = require_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    suite = loaded.suite
    shipments = {job: job_files(suite, job) for job in jobs}  # a refused input stops the run before Ray starts
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... for a cluster it cannot reach
        raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster "
                        f"({' '.join(str(exc).split())[:200]}); start one with `ray start --head`") from None
    pending: dict = {}
    try:
        cluster = ray.cluster_resources()
        no_gpu = []  # as a provider missing here: skipped, not waited for
        for job in jobs:
            _, backend, _, _ = job_specs(suite, job)
            asks = _resources(backend)
            if asks["num_cpus"] > cluster.get("CPU", 0):
                raise UserError(f"backend '{backend.name}': a task asks for {asks['num_cpus']} CPUs (its "
                                f"intra_op_num_threads), the Ray cluster at {address} has {cluster.get('CPU', 0):g}; "
                                "lower intra_op_num_threads or add nodes")
            if asks["num_gpus"] > cluster.get("GPU", 0):
                no_gpu.append(job)
        for job in no_gpu:
            entry = skipped_entry(job, suite, f"needs a GPU; the Ray cluster at {address} has none")
            log(f"skipped {job.label}: {entry['reason']}")
            yield job, entry
        jobs = [job for job in jobs if job not in no_gpu]
        store: dict[Path, list] = {}
        size = 0
        for paths in (shipments[job] for job in jobs):
            for path in paths:
                if path not in store:
                    store[path], shipped = _put(ray, path)
                    size += shipped
        log(f"shipped {len(store)} input files and folders ({size / 1e6:.1f} MB) to the Ray object store at "
            f"{address}; running {len(jobs)} combinations as Ray tasks ...")
        task = ray.remote(_job_task)
        for job in jobs:
            _, backend, _, _ = job_specs(suite, job)
            shipment = [(str(p), store[p]) for p in shipments[job]]
            pending[task.options(**_resources(backend)).remote(loaded, job, shipment)] = job
        with CombinationsBar(len(pending), log) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=bar.TICK_SECONDS)
                bar.tick()
                if not done:
                    continue
                job = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except Exception as exc:  # the task itself failed (its node died, evalkit missing there): this job
                    why = UserError(f"its Ray task failed: {type(exc).__name__}: {exc}")  # the cluster's, not a bug
                    entry = failed_entry(job, suite, why, Path(run_dir) / job.folder)
                    write_entry(Path(run_dir) / job.folder, entry)
                    bar.done(f"FAILED {job.label}: {entry['reason']}")
                    yield job, entry
                    continue
                write_files(Path(run_dir) / job.folder, result["files"])
                entry = result["entry"]
                status = "finished" if entry["status"] == "ok" else entry["status"]
                bar.done(f"{status} {job.label} on {result['node']}"
                         + (f": {entry.get('reason')}" if entry["status"] != "ok" else ""))
                yield job, entry
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.shutdown()
