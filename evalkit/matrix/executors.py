"""Where the run matrix's jobs run: in this process, in local worker processes, or as Ray tasks.

Every executor takes the same jobs (jobs.Job) and yields ``(job, entry)`` as each finishes, in the order
they finish; the driver (run.run_suite) orders the entries and does the rest (parity, gates, report) alone.
Workers and Ray take the jobs longest first (jobs.longest_first), so that no worker is left alone at the end
with the longest one.

- one worker: the jobs run here, one after the other (no pool);
- N workers: N processes forked from a multiprocessing fork server (``forkserver``: ONNX Runtime is not
  fork-safe once a session exists, and the fork server never creates one), each sent one job at a time (so a
  worker that dies costs its own job only); the workers write into the run folder themselves and die with their
  driver. The fork server is started when the run starts (``start_fork_server``, before preflight) as a fork of
  the driver, which has imported the pipeline by then and has started no thread and no session
  (``_fork_server_from_here``; a fresh interpreter importing it all again where that cannot be done), and loads
  what else a worker needs (worker_preload.py) while the driver checks the suite: a worker is a fork of it, not
  an interpreter importing everything again;
- Ray (evalkit/matrix/ray_tasks.py): each job is a task on a cluster; its files travel through the object store.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from multiprocessing import connection
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from evalkit.errors import UserError
from evalkit.matrix.combinations_bar import CombinationsBar

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


FORK_SERVER_PRELOAD = ["evalkit.matrix.worker_preload"]


def _pool_context():
    """The fork server's context (its preload set), or ``spawn`` where there is no fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORK_SERVER_PRELOAD)
    return context


def start_fork_server(suite, workers: int | None, executor: Executor = "local", jobs: int | None = None) -> None:
    """Start the workers' fork server now, where the run will use local workers, so that it imports the pipeline
    (worker_preload.py) while this process checks the suite; dlib's models too where the suite measures faces
    and the face extra is here. Nothing where the run needs no pool (one worker, one job, Ray)."""
    count = workers or default_workers(suite)
    if executor != "local" or count <= 1 or (jobs is not None and jobs <= 1):
        return
    context = _pool_context()
    if context.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    from evalkit.matrix.worker_preload import FACE_ENV

    if suite.metrics.face:
        from evalkit.metrics.face import face_models_missing

        os.environ[FACE_ENV] = "1" if face_models_missing() is None else "0"  # the fork server's, from its start
    if not _fork_server_from_here():
        forkserver.ensure_running()


def _fork_server_from_here() -> bool:
    """Start multiprocessing's fork server as a fork of this process (what ``forkserver.ensure_running`` does,
    with ``os.fork`` instead of a new interpreter): the driver has imported the pipeline already (evalkit.run),
    so the fork server does not import it all again (about 1.5 CPU-s). Only where it is safe: Linux, this one
    thread (no lock held by another thread is copied), and CPython's fork server as this code knows it. The fork
    keeps only its listening socket and its "alive" pipe (and stdin/stdout/stderr), takes default signal handlers,
    loads what worker_preload adds (dlib's models where the suite measures faces) and never returns: it leaves
    with ``os._exit``. False where it was not started here (the caller starts it the usual way)."""
    import socket
    import threading
    from multiprocessing import forkserver, resource_tracker, util

    server = getattr(forkserver, "_forkserver", None)
    if (not sys.platform.startswith("linux") or threading.active_count() != 1 or server is None
            or not all(hasattr(server, a) for a in ("_lock", "_forkserver_pid", "_forkserver_address",
                                                    "_forkserver_alive_fd", "_preload_modules"))):
        return False
    from evalkit.matrix import worker_preload

    with server._lock:
        resource_tracker.ensure_running()
        if server._forkserver_pid is not None:
            return False  # one was started before: ensure_running knows whether it still runs
        with socket.socket(socket.AF_UNIX) as listener:
            address = connection.arbitrary_address("AF_UNIX")
            listener.bind(address)
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()  # every client holds the writing end: the server ends when they all have
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:  # the fork server
                    try:
                        _become_fork_server(listener.fileno(), alive_r, worker_preload.preload)
                    finally:
                        os._exit(0)
            except BaseException:
                os.close(alive_w)
                raise
            finally:
                os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    return True


def _become_fork_server(listener_fd: int, alive_r: int, preload) -> None:
    from multiprocessing import forkserver

    keep = {0, 1, 2, listener_fd, alive_r}
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in a new interpreter
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        preload()
    except Exception:  # as worker_preload's own: a preload that fails costs time, never the run
        pass
    forkserver.main(listener_fd, alive_r, [])


def stop_fork_server() -> None:
    """Stop the fork server (its workers have ended) and wait for it: no process outlives the pool, and the
    fork server's CPU time (and its workers') counts in this process's children's."""
    from multiprocessing import forkserver

    try:
        forkserver._forkserver._stop()
    except (OSError, AttributeError):
        pass


def _worker_init(driver: int) -> None:
    """A worker ignores Ctrl-C (the terminal sends it to the whole process group): the driver stops it. Its
    progress bars are off: several processes' bars on one terminal would be unreadable. It dies with its driver
    (``die_with_parent``): a driver killed with SIGKILL leaves no worker writing into its run folder."""
    import threading

    from tqdm import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TQDM_DISABLE"] = "1"
    # tqdm's default lock is a multiprocessing semaphore; a worker killed with SIGKILL could not give it back,
    # and the resource tracker would warn about it at the run's end: a worker's own bars need a thread lock only
    tqdm.set_lock(threading.RLock())
    die_with_parent(driver)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def die_with_parent(driver: int) -> None:
    """Ask Linux to send this process SIGKILL when its parent ends (``prctl(PR_SET_PDEATHSIG)``), and end now
    if the driver has already gone (it may have, before the request took effect). The parent is the driver
    itself (spawn) or the driver's fork server, which ends when its driver does (its "alive" pipe closes); a
    parent that is neither is the orphans' reaper: the driver is gone. Elsewhere: nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    parent = os.getppid()
    if parent != driver and (not sys.platform.startswith("linux") or _parent_of(parent) != driver):
        os._exit(1)


def _die_with_driver(alive) -> None:
    """Block until the driver's end of ``alive`` closes (the driver never writes on it), then SIGKILL this
    worker: a worker forked by the fork server is not the driver's child, so PR_SET_PDEATHSIG (its parent's
    death) would wait for the fork server, which waits for its workers."""
    try:
        while True:
            alive.recv_bytes()
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_main(conn, driver: int, environment: dict | None = None, alive=None) -> None:
    """A worker process: runs the jobs its driver sends on ``conn`` (``(loaded, job, run_dir)``; None: stop)
    and sends back ``("entry", entry)``, or ``("error", traceback text)`` for what ``run_job`` itself raised.
    ``environment``: the driver's, as it is when the worker starts (a fork server's own is the one it started
    with: the run's decoded frames, fault injection and the like are set later)."""
    if environment is not None:
        os.environ.clear()
        os.environ.update(environment)
    _worker_init(driver)
    if alive is not None:
        import threading

        threading.Thread(target=_die_with_driver, args=(alive,), daemon=True, name="evalkit-driver-watch").start()
    from evalkit.matrix.jobs import run_job

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        loaded, job, run_dir = message
        try:
            reply = ("entry", run_job(loaded, job, run_dir))
        except Exception:
            import traceback

            reply = ("error", traceback.format_exc())
        conn.send(reply)


class _Worker:
    """A worker process, its end of the pipe, and the job it is running (None: idle)."""

    def __init__(self, context, driver: int):
        self.conn, theirs = context.Pipe()
        alive, self._alive = context.Pipe(duplex=False)  # only this process holds the writing end: its end is ours
        self.process = context.Process(target=_worker_main, args=(theirs, driver, dict(os.environ), alive),
                                       daemon=True, name="evalkit-worker")
        self.process.start()
        theirs.close()
        alive.close()
        self.job = None

    def give(self, loaded, job, run_dir: Path) -> bool:
        """Send it ``job``; False when it has died meanwhile (it never got the job)."""
        try:
            self.conn.send((loaded, job, run_dir))
        except OSError:
            return False
        self.job = job
        return True

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass

    def reply(self):
        """The worker's reply, or None when it died without one."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None


def _run_in_pool(loaded: LoadedSuite, jobs: list[Job], run_dir: Path, workers: int,
                 log) -> Iterator[tuple[Job, dict]]:
    """The jobs in ``workers`` spawned worker processes, each job sent to a worker that is free. The driver knows
    which job each worker runs: a worker that dies (SIGKILL from the out-of-memory killer, a native crash)
    fails its own job only (``jobs.worker_died_entry``, kept as its entry.json), a new worker takes its place,
    and the other jobs run on. Interrupted (or a bug here), every worker is stopped at once."""
    from evalkit.matrix.jobs import worker_died_entry, write_entry

    log(f"running {len(jobs)} combinations in {workers} worker processes ...")
    context = _pool_context()
    todo = list(jobs)
    pool: list[_Worker] = []
    try:
        with CombinationsBar(len(jobs), log) as bar:
            while todo or any(w.job is not None for w in pool):
                for worker in [w for w in pool if w.job is None and not w.process.is_alive()]:
                    pool.remove(worker)  # died while idle: nothing lost, another takes its place
                    worker.conn.close()
                    worker._alive.close()
                while todo and len(pool) < workers:
                    pool.append(_Worker(context, os.getpid()))
                for worker in pool:
                    if worker.job is None and todo and worker.give(loaded, todo[0], run_dir):
                        todo.pop(0)
                busy = [w for w in pool if w.job is not None]
                ready = connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                        timeout=bar.TICK_SECONDS)
                bar.tick()
                for worker in busy:
                    if worker.conn not in ready and worker.process.sentinel not in ready:
                        continue
                    job, reply = worker.job, worker.reply()
                    if reply is None and worker.process.is_alive():
                        continue  # woken by the other handle; its reply comes
                    worker.job = None
                    if reply is None:  # it died with the job
                        worker.process.join()
                        entry = worker_died_entry(job, loaded.suite, worker.process.exitcode)
                        write_entry(run_dir / job.folder, entry)
                    elif reply[0] == "error":
                        raise RuntimeError(f"a worker process failed outside its job {job.label}:\n{reply[1]}")
                    else:
                        entry = reply[1]
                    bar.done(_finished_line(job, entry))
                    yield job, entry
        for worker in pool:
            worker.stop()
        for worker in pool:
            worker.process.join(timeout=30)
    finally:  # interrupted, or done: no worker outlives the run (a stopped one has already gone)
        _end(pool)
        stop_fork_server()


def _end(pool: list[_Worker]) -> None:
    for worker in pool:
        if worker.process.is_alive():
            worker.process.terminate()
    for worker in pool:
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        worker._alive.close()


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
