"""What evalkit costs beside the model: CPU-ms a frame and fixed CPU-s a run, per stage (issue 24's benchmark).

Run from the checkout, with the fixtures built (``evalkit fixtures build``)::

    python tests/benchmarks/own_cost.py            # both sizes; --sizes 640x480 for one
    python tests/benchmarks/own_cost.py --repeat 3 # medians of 3 pairs of runs (to compare code: a pair is noisy)
    python tests/benchmarks/own_cost.py --no-face  # without the field's face metrics (metrics.face: false)

For each frame size (the fixture clip as built, 640x480, and the same clip scaled to 1440x1080 with its crop
boxes scaled alike: a real recording's size), two runs of the fixture ``reference`` model (its inference is
negligible) with the clip as its own ground truth and every default metric, ``intra_op_num_threads: 1``, for
4 s and for 12 s of audio, each `evalkit run` in a fresh process. CPU-seconds of a run: the process and all
its children (``os.wait4``), ffmpeg included. Per frame = the difference between the two runs over the
difference in frames (imports, the report and other fixed costs drop out); fixed = the rest of the 4 s run.

Per stage: the run record's ``stage_cpu_seconds`` (each stage thread's own CPU, ``time.thread_time``; the
viewer pass, sync and the latency pass by the process's CPU while only they ran), and each ffmpeg child's CPU
read from /proc while it runs (every 50 ms; its role from its command line). "python, elsewhere" is the
process's CPU outside the stages: imports, preflight, audio features, sessions, the report, the threads' idle
polling. Nothing here passes or fails: it prints the figures, the goals and the machine, and writes
``reports/benchmarks/own_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.benchmarks.pipeline_speed import FIXTURES, REPO, cut_audio, machine  # noqa: E402

RESULTS = REPO / "reports" / "benchmarks" / "own_cost.json"
GOALS_MS = {"640x480": 15.0, "1440x1080": 40.0}  # CPU-ms a frame (issue 24)
GOAL_FIXED_S = 6.0
TICKS = os.sysconf("SC_CLK_TCK")


def scaled_clip(work: Path, width: int, height: int) -> tuple[Path, Path]:
    """The fixture clip and its crop boxes scaled to width x height (lossless), or the clip itself."""
    clip = FIXTURES / "clip"
    video, boxes = clip / "talking_head.mkv", clip / "crop_boxes.txt"
    from evalkit.media.ffmpeg import ffmpeg_exe, probe_video

    info = probe_video(video)
    if (info.width, info.height) == (width, height):
        return video, boxes
    out = work / f"talking_head_{width}x{height}.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-vf", f"scale={width}:{height}:flags=bicubic",
                    "-c:v", "ffv1", "-pix_fmt", "rgb24", str(out)], check=True)
    sx, sy = width / info.width, height / info.height
    rows = np.loadtxt(boxes, ndmin=2)
    scaled = np.rint(rows * [sx, sy, sx, sy]).astype(int)
    out_boxes = work / f"crop_boxes_{width}x{height}.txt"
    np.savetxt(out_boxes, scaled, fmt="%d", header="x1 y1 x2 y2 per frame (half-open, pixels)")
    return out, out_boxes


def suite(work: Path, video: Path, boxes: Path, audio: Path, name: str, face: bool = True) -> Path:
    models = FIXTURES / "models"
    data = {
        "name": name,
        "models": [{"name": "reference", "generator": str(models / "reference.onnx"),
                    "audio_encoder": str(models / "audio_encoder.onnx")}],
        "inputs": [{"name": "clip", "video": str(video), "audio": str(audio), "crop_boxes": str(boxes),
                    "ground_truth": str(video)}],
        "backends": [{"name": "cpu", "provider": "CPUExecutionProvider",
                      "session_options": {"intra_op_num_threads": 1}}],
        "metrics": {"trim_to_shortest": True, **({} if face else {"face": False})},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid]
        found += kids
        frontier += kids
    return found


def _role(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    if not args or "ffmpeg" not in Path(args[0]).name or "-version" in args:
        return None
    if "-i" in args and args[-1] in ("pipe:", "pipe:1", "-"):
        return f"ffmpeg decode {Path(args[args.index('-i') + 1]).name}"

    def after(*flags: str) -> str:
        for flag in flags:
            if flag in args[:-1]:
                return args[args.index(flag) + 1]
        return ""

    # encoders write to a temporary name (renamed when done): tell them by codec and preset
    codec = after("-c:v", "-vcodec")
    return " ".join(["ffmpeg encode", codec, after("-preset")]).strip() if codec else "ffmpeg, other (pictures, probes)"


def _cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return None


def evalkit_run(suite_path: Path, out: Path) -> dict:
    """One `evalkit run` in a fresh process: wall, total CPU (process and children), ffmpeg CPU by role."""
    seen: dict[int, tuple[str, float]] = {}
    done = threading.Event()
    t0 = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "evalkit", "-q", "run", str(suite_path), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def poll() -> None:
        while not done.is_set():
            for pid in _descendants(process.pid):
                role = seen[pid][0] if pid in seen else _role(pid)
                cpu = _cpu(pid)
                if role and cpu is not None:
                    seen[pid] = (role, cpu)
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    done.set()
    poller.join()
    if process.returncode not in (0, 1):
        raise SystemExit(f"evalkit run failed ({process.returncode}):\n{stderr[-3000:]}")
    run_dir = Path(stdout.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    [entry] = record["runs"]
    ffmpeg: dict[str, float] = {}
    for role, cpu in seen.values():
        ffmpeg[role] = ffmpeg.get(role, 0.0) + cpu
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "frames": entry["frames"],
            "stages": entry.get("stage_cpu_seconds") or {}, "ffmpeg": ffmpeg}


def _pair(short: dict, long_: dict, size: str) -> dict:
    """The figures of one 4 s run and one 12 s run: per frame, fixed, and each part's."""
    frames = long_["frames"] - short["frames"]
    per_frame_ms = (long_["cpu"] - short["cpu"]) / frames * 1e3
    fixed = short["cpu"] - per_frame_ms / 1e3 * short["frames"]
    parts = sorted(set(short["stages"]) | set(long_["stages"]) | set(short["ffmpeg"]) | set(long_["ffmpeg"]))
    table = {}
    for part in parts:
        a = short["stages"].get(part, short["ffmpeg"].get(part, 0.0))
        b = long_["stages"].get(part, long_["ffmpeg"].get(part, 0.0))
        table[part] = {"ms_per_frame": (b - a) / frames * 1e3, "cpu_s_4s_run": a}
    accounted = sum(v["ms_per_frame"] for v in table.values())
    table["python, elsewhere"] = {"ms_per_frame": per_frame_ms - accounted,
                                  "cpu_s_4s_run": short["cpu"] - sum(v["cpu_s_4s_run"] for v in table.values())}
    return {"size": size, "frames": [short["frames"], long_["frames"]], "wall_4s_run": short["wall"],
            "cpu_4s_run": short["cpu"], "cpu_12s_run": long_["cpu"], "ms_per_frame": per_frame_ms,
            "fixed_cpu_seconds": fixed, "goal_ms_per_frame": GOALS_MS.get(size), "stages": table}


def measure_size(work: Path, size: str, repeat: int = 1, face: bool = True) -> dict:
    """``repeat`` pairs of runs (4 s and 12 s of audio; every other pair in the other order, so that neither
    length always runs first); the figures are the medians over the pairs, each pair's kept under ``pairs``."""
    width, height = map(int, size.split("x"))
    video, boxes = scaled_clip(work, width, height)
    suites = {seconds: suite(work, video, boxes, cut_audio(seconds, work / f"speech_{seconds}s.wav"),
                             f"own_cost_{size}_{seconds}s", face) for seconds in (4, 12)}
    pairs = []
    for k in range(repeat):
        runs = {seconds: evalkit_run(suites[seconds], work / f"runs_{size}") for seconds in ((4, 12), (12, 4))[k % 2]}
        pairs.append(_pair(runs[4], runs[12], size))
    if repeat == 1:
        return pairs[0]
    median = lambda values: float(np.median(values))  # noqa: E731
    keys = ("wall_4s_run", "cpu_4s_run", "cpu_12s_run", "ms_per_frame", "fixed_cpu_seconds")
    out = {"size": size, "frames": pairs[0]["frames"], "goal_ms_per_frame": GOALS_MS.get(size),
           **{key: median([p[key] for p in pairs]) for key in keys}}
    out["spread_ms_per_frame"] = [min(p["ms_per_frame"] for p in pairs), max(p["ms_per_frame"] for p in pairs)]
    out["spread_fixed_cpu_seconds"] = [min(p["fixed_cpu_seconds"] for p in pairs),
                                       max(p["fixed_cpu_seconds"] for p in pairs)]
    parts = sorted({part for p in pairs for part in p["stages"]})
    out["stages"] = {part: {field: median([p["stages"].get(part, {}).get(field, 0.0) for p in pairs])
                            for field in ("ms_per_frame", "cpu_s_4s_run")} for part in parts}
    out["pairs"] = pairs
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x480,1440x1080", help="frame sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs per size; the figures are their medians "
                        "(a pair's per-frame figure moves by several CPU-ms on this VM: 3 or more to compare code)")
    parser.add_argument("--no-face", action="store_true",
                        help="runs without the field's face metrics (metrics.face: false: dlib's landmarks, identity "
                        "descriptors and models, which came after the goals were set)")
    args = parser.parse_args()
    import tempfile

    results = {"machine": machine(), "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "face_metrics": not args.no_face}
    without = "; without the face metrics (metrics.face: false)" if args.no_face else ""
    print(f"machine: {results['machine']}{without}")
    with tempfile.TemporaryDirectory(prefix="evalkit-own-cost-") as tmp:
        for size in args.sizes.split(","):
            r = measure_size(Path(tmp), size, args.repeat, face=not args.no_face)
            results[size] = r
            goal = r["goal_ms_per_frame"]
            if args.repeat > 1:
                print(f"\n{size}, medians of {args.repeat} pairs: CPU-ms a frame {r['spread_ms_per_frame'][0]:.1f} to "
                      f"{r['spread_ms_per_frame'][1]:.1f}, fixed CPU-s {r['spread_fixed_cpu_seconds'][0]:.1f} to "
                      f"{r['spread_fixed_cpu_seconds'][1]:.1f} over the pairs")
            print(f"\n{size}: {r['ms_per_frame']:.1f} CPU-ms a frame (goal {goal:g}: "
                  f"{'met' if goal and r['ms_per_frame'] <= goal else 'not met'}), fixed {r['fixed_cpu_seconds']:.1f} "
                  f"CPU-s a run (goal {GOAL_FIXED_S:g}: {'met' if r['fixed_cpu_seconds'] <= GOAL_FIXED_S else 'not met'}); "
                  f"4 s run: {r['wall_4s_run']:.1f} s wall, {r['cpu_4s_run']:.1f} CPU-s; frames {r['frames']}")
            print("| part | CPU-ms a frame | CPU-s in the 4 s run |\n|---|---|---|")
            for part, v in sorted(r["stages"].items(), key=lambda kv: -kv[1]["ms_per_frame"]):
                print(f"| {part} | {v['ms_per_frame']:.1f} | {v['cpu_s_4s_run']:.2f} |")
    out = RESULTS.with_name("own_cost_no_face.json") if args.no_face else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
