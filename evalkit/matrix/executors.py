"""Where the run matrix's jobs run: in this process, in local worker processes, or as Ray tasks.

Every executor takes the same jobs (jobs.Job) and yields ``(job, entry)`` as each finishes, in the order
they finish; the driver (run.run_suite) orders the entries and does the rest (parity, gates, report) alone.
Workers and Ray take the jobs longest first (jobs.longest_first), so that no worker is left alone at the end
with the longest one.

- one worker: the jobs run here, one after the other (no pool);
- N workers: a ``ProcessPoolExecutor`` of N processes started with ``spawn`` (ONNX Runtime is not fork-safe
  once a session exists); the workers write into the run folder themselves;
- Ray (evalkit/matrix/ray_tasks.py): each job is a task on a cluster; its files travel through the object store.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from evalkit.errors import UserError

if TYPE_CHECKING:  # the jobs (and the whole pipeline behind them) are imported when a run starts: `evalkit run`
    # checks its options and its suite first, so a mistake there is told in a fraction of a second
    from evalkit.config.suite import LoadedSuite
    from evalkit.matrix.jobs import Job

Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = ("local", "ray")


def default_workers(suite) -> int:
    """Worker processes that fit this machine: its cores over the most threads one backend's session asks for
    (unset or 0 means ONNX Runtime takes every core), at least 1."""
    cores = os.cpu_count() or 1
    threads = max((b.session_options.intra_op_num_threads or cores) for b in suite.backends)
    return max(1, cores // threads)


def execute(loaded: LoadedSuite, jobs: list[Job], run_dir: Path, workers: int, executor: Executor = "local",
            ray_address: str | None = None, log=print) -> Iterator[tuple[Job, dict]]:
    """Run ``jobs`` into ``run_dir``; yields each job with its entry as it finishes. Close the iterator (or let
    it finish) so that workers still running are stopped: an interruption stops them all."""
    from evalkit.matrix.jobs import longest_first, run_job

    if executor == "ray":
        from evalkit.matrix.ray_tasks import run_on_ray

        yield from run_on_ray(loaded, longest_first(loaded.suite, jobs), run_dir, ray_address, log)
    elif workers <= 1 or len(jobs) <= 1:
        for job in jobs:  # in the suite's order: one after the other, the order does not change the time
            yield job, run_job(loaded, job, run_dir, log)
    else:
        yield from _run_in_pool(loaded, longest_first(loaded.suite, jobs), run_dir, min(workers, len(jobs)), log)


def _worker_init() -> None:
    """A worker ignores Ctrl-C (the terminal sends it to the whole process group): the driver stops it. Its
    progress bars are off: several processes' bars on one terminal would be unreadable."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TQDM_DISABLE"] = "1"


class CombinationsBar:
    """A progress bar over the run's combinations (elapsed time, and the time left as tqdm guesses it) where
    stderr is a terminal, for the executors whose workers show no bars of their own. No bar with ``-q``
    (TQDM_DISABLE). ``done(line)`` logs a line above the bar and counts one more combination; ``tick()`` redraws
    it, so that the elapsed time moves while a long combination runs."""

    TICK_SECONDS = 1.0  # how often a waiting executor calls tick()

    def __init__(self, total: int, log):
        from tqdm import tqdm

        self.log = log
        self.bar = tqdm(total=total, desc="combinations", unit="combination", leave=False,
                        disable=True if os.environ.get("TQDM_DISABLE") else None)

    def done(self, line: str) -> None:
        with self.bar.external_write_mode():
            self.log(line)
        self.bar.update(1)

    def tick(self) -> None:
        self.bar.refresh()

    def __enter__(self) -> "CombinationsBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _run_in_pool(loaded: LoadedSuite, jobs: list[Job], run_dir: Path, workers: int,
                 log) -> Iterator[tuple[Job, dict]]:
    from evalkit.matrix.jobs import run_job

    log(f"running {len(jobs)} combinations in {workers} worker processes ...")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)
    finished = False
    try:
        pending = {pool.submit(run_job, loaded, job, run_dir): job for job in jobs}
        with CombinationsBar(len(jobs), log) as bar:
            while pending:
                done, _ = wait(pending, timeout=bar.TICK_SECONDS, return_when=FIRST_COMPLETED)
                bar.tick()
                for future in done:
                    job = pending.pop(future)
                    entry = future.result()
                    bar.done(_finished_line(job, entry))
                    yield job, entry
        finished = True
    finally:
        if not finished:  # interrupted, or a worker died: stop the others now, not after their jobs
            processes = list((pool._processes or {}).values())
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=10)
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            pool.shutdown()


def _finished_line(job: Job, entry: dict) -> str:
    if entry["status"] == "ok":
        return f"finished {job.label}: {entry['frames']} frames in {entry['generate_seconds']:.1f} s"
    return f"{'FAILED' if entry['status'] == 'failed' else 'skipped'} {job.label}: {entry.get('reason')}"


def check_executor(executor: Executor, workers: int | None, ray_address: str | None) -> None:
    """Usage errors of the executor options, before anything runs."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more (1 runs every combination in this process)")
    if executor == "ray":
        from evalkit.matrix.ray_tasks import require_ray

        require_ray()
        if workers is not None:
            raise UserError("--workers is for the local executor; with --executor ray the cluster's CPUs and GPUs "
                            "decide how many combinations run at once")
        if not (ray_address or os.environ.get("RAY_ADDRESS")):
            raise UserError("--executor ray needs the cluster's address: --ray-address HOST:PORT (or set "
                            "RAY_ADDRESS; `auto` for a cluster started on this machine with `ray start --head`)")
    elif ray_address:
        raise UserError("--ray-address is for --executor ray")
