"""Issue 24's fixed cost a run and the efficiency of ``--workers 2`` (a benchmark: it prints, nothing passes or fails).

Run from the checkout, with the fixtures built (``evalkit fixtures build``)::

    python tests/benchmarks/workers_efficiency.py            # both parts; --parts fixed or --parts workers

- fixed: evalkit's fixed CPU-seconds a run (imports, sessions, the latency pass, the field metrics' samples, the
  report), as tests/benchmarks/own_cost.py measures it at 640x480: two runs of the fixture ``reference`` model
  (4 s and 12 s of audio), fixed = the 4 s run's CPU less its frames at the per-frame cost that the difference
  of the two runs gives. Goal: at most 6 CPU-s.
- workers: four single-threaded combinations (the fixture models reference, lag2, noisy, mobile_unet on 8 s of
  the fixture clip with its ground truth, the suite's default timing and metrics), each `evalkit run` in a fresh
  process with ``--workers 1`` and with ``--workers 2``; wall seconds and CPU-seconds of the process and all its
  descendants (ffmpeg, the worker processes). What the cores allow two workers: the lesser of 2x and
  cores x wall / CPU-s of the one-worker run (every core busy with one worker's CPU work); efficiency = the
  speed-up over that. Goal: at least 0.85.

CPU-seconds are what to compare on a shared machine (other processes stretch the wall clock); the wall figures
and the efficiency need a quiet one. Writes ``reports/benchmarks/workers_efficiency.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.benchmarks import own_cost  # noqa: E402
from tests.benchmarks.pipeline_speed import CORES, LAST_CPU_SECONDS, REPO, cut_audio, evalkit_run, machine, suite_file  # noqa: E402

RESULTS = REPO / "reports" / "benchmarks" / "workers_efficiency.json"
GOAL_FIXED_S = own_cost.GOAL_FIXED_S
GOAL_EFFICIENCY = 0.85
MODELS = ["reference", "lag2", "noisy", "mobile_unet"]
SECONDS = 8.0


def fixed(work: Path) -> dict:
    r = own_cost.measure_size(work, "640x480")
    print(f"fixed: {r['fixed_cpu_seconds']:.1f} CPU-s a run (goal {GOAL_FIXED_S:g}: "
          f"{'met' if r['fixed_cpu_seconds'] <= GOAL_FIXED_S else 'not met'}); {r['ms_per_frame']:.1f} CPU-ms a frame; "
          f"4 s run {r['wall_4s_run']:.1f} s, {r['cpu_4s_run']:.1f} CPU-s; 12 s run {r['cpu_12s_run']:.1f} CPU-s")
    return {"fixed_cpu_seconds": r["fixed_cpu_seconds"], "ms_per_frame": r["ms_per_frame"],
            "cpu_4s_run": r["cpu_4s_run"], "cpu_12s_run": r["cpu_12s_run"], "wall_4s_run": r["wall_4s_run"],
            "goal": GOAL_FIXED_S}


def workers(work: Path) -> dict:
    audio = cut_audio(SECONDS, work / "speech_8s.wav")
    suite = suite_file(work, MODELS, audio, threads=1, name="workers")
    out: dict = {}
    for n in (1, 2):
        wall, _, _ = evalkit_run(suite, work / f"workers{n}", "--workers", str(n))
        out[f"workers_{n}_seconds"], out[f"workers_{n}_cpu_seconds"] = wall, LAST_CPU_SECONDS[0]
        print(f"workers: --workers {n}: {wall:.1f} s, {LAST_CPU_SECONDS[0]:.1f} CPU-s "
              f"({LAST_CPU_SECONDS[0] / wall:.2f} cores busy on average)")
    wall1, cpu1, wall2 = out["workers_1_seconds"], out["workers_1_cpu_seconds"], out["workers_2_seconds"]
    out["speedup"] = wall1 / wall2
    out["allowed"] = min(2.0, CORES * wall1 / cpu1)
    out["efficiency"] = out["speedup"] / out["allowed"]
    out["second_worker_cpu_seconds"] = out["workers_2_cpu_seconds"] - cpu1
    print(f"workers: speed-up {out['speedup']:.2f}x of the {out['allowed']:.2f}x the cores allow: efficiency "
          f"{out['efficiency']:.2f} (goal {GOAL_EFFICIENCY}: {'met' if out['efficiency'] >= GOAL_EFFICIENCY else 'not met'}); "
          f"the second worker costs {out['second_worker_cpu_seconds']:+.1f} CPU-s")
    return out


PARTS = {"fixed": fixed, "workers": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="fixed,workers", help="comma-separated: fixed, workers")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = machine()
    print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory(prefix="evalkit-workers-") as tmp:
        for part in args.parts.split(","):
            results[part] = PARTS[part](Path(tmp)) | {"measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
