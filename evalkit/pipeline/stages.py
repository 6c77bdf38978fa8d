"""Stages that overlap: threads joined by bounded queues, with one error path.

The streamed pass (``generate.generate``) runs its stages in threads: template decoding, the model (the
calling thread), encoding, and measuring. ONNX Runtime, OpenCV, numpy's large operations and the ffmpeg
pipes release the GIL, so on a GPU the CPU stages hide behind inference and on a CPU the harness fills the
cores the model leaves idle. Queues are bounded (frames in flight are reused buffers, never an unbounded
backlog), and a failure in any stage stops every other one and is raised in the calling thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

POLL_SECONDS = 0.05  # how often a blocked stage looks whether another one failed


class StageFailed(Exception):
    """Raised in a stage when another stage failed: it stops quietly; the first error is what surfaces."""


class Stages:
    """A set of stage threads sharing an abort flag; ``join`` re-raises the first stage's error."""

    def __init__(self):
        self.abort = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self.busy: dict[str, float] = {}  # seconds each stage spent working (not waiting), by name
        self.cpu: dict[str, float] = {}  # CPU seconds each stage's thread used while working (time.thread_time)

    def start(self, name: str, body: Callable[[], None]) -> None:
        def run() -> None:
            try:
                body()
            except StageFailed:
                pass
            except BaseException as exc:  # every error, to the calling thread
                self._errors.append(exc)
                self.abort.set()

        thread = threading.Thread(target=run, name=f"evalkit-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def fail(self, exc: BaseException) -> None:
        """The calling thread's own failure: stop the others."""
        self._errors.append(exc)
        self.abort.set()

    def put(self, q: queue.Queue, item) -> None:
        while True:
            if self.abort.is_set():
                raise StageFailed
            try:
                q.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue):
        while True:
            if self.abort.is_set():
                raise StageFailed
            try:
                return q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue

    def timed(self, name: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        self.busy[name] = self.busy.get(name, 0.0) + seconds
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds

    def join(self) -> None:
        """Wait for every stage; raise the first error any of them (or the caller) met."""
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]


class Timer:
    """``with Timer(stages, "encode"):`` adds the block's wall-clock seconds to that stage's busy time, and the
    CPU seconds its thread used (``time.thread_time``: this thread's own work, the native code it calls
    included; not other threads', not ffmpeg's processes')."""

    __slots__ = ("stages", "name", "t0", "c0")

    def __init__(self, stages: Stages, name: str):
        self.stages, self.name = stages, name

    def __enter__(self) -> "Timer":
        self.t0, self.c0 = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.stages.timed(self.name, time.perf_counter() - self.t0, time.thread_time() - self.c0)
