"""Inference latency, measured apart from the pipeline.

During generation the encoders run beside the generator and compete for the
CPU, so per-frame times inside the pipeline say how fast the whole pipeline
is, not how fast the model is. After generation, with the encoders closed,
the generator runs again on the inputs of the first frames (real inputs, not
random tensors): ``warmup`` runs first (timed, kept apart, excluded), then
timed runs until both ``min_count`` runs and ``min_seconds`` have passed.
Wall-clock timings come from time.perf_counter; every raw sample is kept.

Beside each wall-clock sample, the CPU time the call used: this process's CPU
seconds (time.process_time: every thread of the process, so ONNX Runtime's
intra-op threads count) around the call. Other processes on a busy machine
stretch the wall clock (the call waits for a core), much less the CPU time the
call itself needs, so speed gates on a CPU backend compare CPU time
(ci/gates.py). And the load while timing: the share of the machine's CPU time
that *other* processes used during the timed loop (from /proc/stat, None where
there is none), and the 1-minute load average at its end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from evalkit.config.suite import TimingSpec
from evalkit.pipeline.runner import Runner

MAX_TIMED = 100_000  # a bound on the loop, whatever the settings
MIN_LOAD_SECONDS = 0.2  # /proc/stat counts in clock ticks (10 ms): a shorter loop's load share is not told


@dataclass
class InferenceTiming:
    """One latency pass: milliseconds per call (wall and CPU), the timed loop's seconds, and the load."""

    warmup_ms: list[float] = field(default_factory=list)
    timed_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_ms: list[float] = field(default_factory=list)  # process CPU time per timed call, beside timed_ms
    load: dict = field(default_factory=dict)  # machine_load(): other processes' share, load average


def _busy_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (every CPU: user, nice, system, irq, softirq, steal)
    from /proc/stat, or None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    busy = sum(ticks[:3]) + sum(ticks[5:8])  # user nice system (idle iowait) irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def machine_load(busy_before: float | None, busy_after: float | None, own_cpu_seconds: float,
                 wall_seconds: float) -> dict:
    """What the machine did beside a timed loop: ``others_share``, the share of all CPUs' time that other
    processes used (0: an idle machine, 1: every core busy with others' work; None without /proc/stat or for a
    loop shorter than MIN_LOAD_SECONDS, which /proc/stat's clock ticks cannot resolve), and
    ``loadavg_1m`` at its end (None where the OS has none)."""
    cpus = os.cpu_count() or 1
    share = None
    if busy_before is not None and busy_after is not None and wall_seconds >= MIN_LOAD_SECONDS:
        share = min(1.0, max(0.0, (busy_after - busy_before - own_cpu_seconds) / (wall_seconds * cpus)))
    try:
        loadavg = os.getloadavg()[0]
    except OSError:
        loadavg = None
    return {"others_share": share, "loadavg_1m": loadavg, "cpus": cpus}


def time_inference(runner: Runner, images: np.ndarray, audios: np.ndarray, warmup: int, min_count: int,
                   min_seconds: float) -> InferenceTiming:
    """The warm-up latencies, the timed latencies (wall and CPU, milliseconds), the timed loop's wall-clock
    seconds and the machine's load meanwhile.

    ``images`` [K, 1, 6, H, W] and ``audios`` [K, 1, ...] are cycled through in order.
    """
    k = len(images)
    if k == 0:
        return InferenceTiming()
    timing = InferenceTiming()
    for i in range(warmup):
        t0 = time.perf_counter()
        runner.infer(images[i % k], audios[i % k])
        timing.warmup_ms.append((time.perf_counter() - t0) * 1e3)
    busy_before, cpu_start = _busy_cpu_seconds(), time.process_time()
    start = time.perf_counter()
    i = 0
    timed_ms, cpu_ms = timing.timed_ms, timing.cpu_ms
    while (len(timed_ms) < min_count or time.perf_counter() - start < min_seconds) and len(timed_ms) < MAX_TIMED:
        c0, t0 = time.process_time(), time.perf_counter()
        runner.infer(images[i % k], audios[i % k])
        t1, c1 = time.perf_counter(), time.process_time()
        timed_ms.append((t1 - t0) * 1e3)
        cpu_ms.append((c1 - c0) * 1e3)
        i += 1
    timing.seconds = time.perf_counter() - start
    timing.load = machine_load(busy_before, _busy_cpu_seconds(), time.process_time() - cpu_start, timing.seconds)
    return timing


def latency_pass(runner: Runner, kept_images: np.ndarray, kept_audio: np.ndarray,
                 timing: TimingSpec) -> tuple[InferenceTiming, dict, float]:
    """The pass after generation: single-frame latency on the kept inputs, then each of ``timing.batch_sizes``
    above 1 where the generator has a dynamic batch axis and enough inputs were kept. Returns the single-frame
    timing, {batch size: latency samples (ms per batch)} and the process CPU seconds of the whole pass."""
    c_latency = time.process_time()
    kept = len(kept_images)
    timed = time_inference(runner, kept_images, kept_audio, timing.warmup, timing.min_timed_frames,
                           timing.min_seconds)
    batches = {}
    for size in timing.batch_sizes:
        if size > 1 and runner.dynamic_batch and kept >= size:
            batches[size] = time_inference(runner, batched(kept_images, size), batched(kept_audio, size),
                                           timing.warmup, timing.min_timed_frames // size + 1,
                                           timing.min_seconds).timed_ms
    return timed, batches, time.process_time() - c_latency  # the latency pass, batches included


def batched(single: np.ndarray, size: int) -> np.ndarray:
    """[K, 1, ...] inputs regrouped as [K // size, size, ...] batches."""
    k = len(single) // size * size
    return single[:k].reshape(k // size, size, *single.shape[2:])
