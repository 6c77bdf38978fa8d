"""A relative speed gate on an unchanged model, timed while another process keeps a core busy; and CPU time per
inference against wall time on a quiet pass.

    python tests/benchmarks/speed_gate_under_load.py [--out FOLDER]

Run from the repository root, with the fixtures built (``evalkit demo`` builds them into data/fixtures). Until
2026-12-07 these were two tests of tests/record/test_runkey.py; they are about speed on a shared machine (the
second was skipped whenever other processes were busy, the first kept a core busy for the length of a run), so
they live here, where speed is reported. The gate's logic itself (CPU clock, inconclusive on noisy timing, never
failed) is checked on hand-made records by tests/report/test_verdicts.py and tests/ci/test_gates_records.py.

1. The baseline: suites/release.yaml's reconstruction protocol on 2 s of the fixture speech, one worker.
2. The same suite again with a relative speed gate against that baseline (throughput_fps may drop 10 %,
   latency_p50_ms rise 10 %), timed while a busy loop in another process keeps one core busy. Expected: each
   gate judges CPU time (``clock`` cpu) and passes or says inconclusive, never fails; the latency pass saw
   at least most of a core used by others; a call's CPU time is at most its two threads' share of its wall
   time (+ 0.1 ms of clock granularity).
3. On the baseline's quiet pass (when other processes used at most a quarter of the machine meanwhile): the
   median CPU time per inference within a factor of 2 of the median wall time.

Prints what it found and exits 1 when an expectation of 2 or 3 is not met.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from evalkit.cli import main as evalkit  # noqa: E402
from evalkit.record.summary import load_run  # noqa: E402
from tests.conftest import release_suite_data  # noqa: E402

SECONDS = 2


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def newest(folder: Path) -> Path:
    return sorted((folder / "release").iterdir())[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--fixtures", type=Path, default=REPO / "data" / "fixtures")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="speed-gate-"))
    out.mkdir(parents=True, exist_ok=True)
    data = release_suite_data(args.fixtures, out, SECONDS)
    data["protocols"] = data["protocols"][:1]
    data.pop("gates")
    data["metrics"] = dict(data["metrics"], face=False)
    data["timing"] = {"warmup": 2, "min_timed_frames": 60, "min_seconds": 0.2}
    (out / "baseline.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert evalkit(["-q", "run", str(out / "baseline.yaml"), "--out", str(out / "baseline"), "--workers", "1"]) == 0
    base_run = newest(out / "baseline")
    problems = []

    entry = load_run(base_run).to_json_dict()["runs"][0]
    share = entry["timing_load"]["others_share"]
    s = entry["summary"]
    ratio = s["cpu_latency_p50_ms"] / s["latency_p50_ms"]
    print(f"quiet pass: others used {share} of the machine; median CPU / wall per inference {ratio:.2f}")
    if share is not None and share <= 0.25 and not 0.5 <= ratio <= 2.0:
        problems.append(f"quiet pass: CPU / wall {ratio:.2f} is outside [0.5, 2]")

    assert evalkit(["-q", "baseline", "set", str(base_run), "--name", "before", "--dir", str(out / "b")]) == 0
    gated = dict(data, baseline=str(out / "b" / "before"),
                 gates=[{"field": "throughput_fps", "max_drop_percent": 10},
                        {"field": "latency_p50_ms", "max_rise_percent": 10}])
    gated["timing"] = {"warmup": 2, "min_timed_frames": 200, "min_seconds": 1.0}
    (out / "gated.yaml").write_text(yaml.safe_dump(gated, sort_keys=False))
    load = multiprocessing.get_context("spawn").Process(target=_busy, args=(600.0,), daemon=True)
    load.start()
    try:
        code = evalkit(["-q", "run", str(out / "gated.yaml"), "--out", str(out / "gated"), "--workers", "1"])
    finally:
        load.terminate()
        load.join()
    run = load_run(newest(out / "gated")).to_json_dict()
    entry = run["runs"][0]
    for g in run["gates"]:
        print(f"gate {g['gate']}: clock {g['clock']}, passed {g['passed']}, inconclusive {g['inconclusive']}")
    if code != 0 or len(run["gates"]) != 2:
        problems.append(f"the gated run exited {code} with {len(run['gates'])} gates (expected 0 and 2)")
    if not all(g["clock"] == "cpu" and (g["passed"] or g["inconclusive"]) for g in run["gates"]):
        problems.append("a speed gate failed an unchanged model on a busy machine, or judged the wall clock")
    cpus = entry["timing_load"]["cpus"]
    print(f"busy pass: others used {entry['timing_load']['others_share']} of the machine ({cpus} CPUs)")
    if entry["timing_load"]["others_share"] < 0.8 / cpus:
        problems.append("the busy loop was not seen by the latency pass")
    if not len(entry["timed_cpu_ms"]) == len(entry["timed_ms"]) >= 200:
        problems.append("fewer than 200 timed calls, or CPU and wall samples of different lengths")
    if not all(c <= 2 * w + 0.1 for c, w in zip(entry["timed_cpu_ms"], entry["timed_ms"])):
        problems.append("a call's CPU time exceeded its two threads' share of its wall time")
    for problem in problems:
        print(f"FAILED: {problem}")
    print(f"runs in {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
