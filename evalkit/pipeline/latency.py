"""Inference latency, measured apart from the pipeline.

During generation the encoders run beside the generator and compete for the
CPU, so per-frame times inside the pipeline say how fast the whole pipeline
is, not how fast the model is. After generation, with the encoders closed,
the generator runs again on the inputs of the first frames (real inputs, not
random tensors): ``warmup`` runs first (timed, kept apart, excluded), then
timed runs until both ``min_count`` runs and ``min_seconds`` have passed.
Timings come from time.perf_counter; every raw sample is kept.
"""

from __future__ import annotations

import time

import numpy as np

from evalkit.pipeline.runner import Runner

MAX_TIMED = 100_000  # a bound on the loop, whatever the settings


def time_inference(runner: Runner, images: np.ndarray, audios: np.ndarray, warmup: int, min_count: int,
                   min_seconds: float) -> tuple[list[float], list[float], float]:
    """Returns (warm-up latencies, timed latencies) in milliseconds and the timed loop's wall-clock seconds.

    ``images`` [K, 1, 6, H, W] and ``audios`` [K, 1, ...] are cycled through in order.
    """
    k = len(images)
    if k == 0:
        return [], [], 0.0
    warmup_ms = []
    for i in range(warmup):
        t0 = time.perf_counter()
        runner.infer(images[i % k], audios[i % k])
        warmup_ms.append((time.perf_counter() - t0) * 1e3)
    timed_ms = []
    start = time.perf_counter()
    i = 0
    while (len(timed_ms) < min_count or time.perf_counter() - start < min_seconds) and len(timed_ms) < MAX_TIMED:
        t0 = time.perf_counter()
        runner.infer(images[i % k], audios[i % k])
        timed_ms.append((time.perf_counter() - t0) * 1e3)
        i += 1
    return warmup_ms, timed_ms, time.perf_counter() - start
