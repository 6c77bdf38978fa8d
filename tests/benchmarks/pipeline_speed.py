"""Harness overhead, demo time, memory and parallel scaling of `evalkit run` (issue 12's benchmarks).

Run from the checkout, with the fixtures built (``evalkit fixtures build``)::

    python tests/benchmarks/pipeline_speed.py all          # or: overhead | demo | memory | memory_long | workers

Each part prints its figures and the machine, and all of them are written to
``reports/benchmarks/pipeline_speed.json``. Nothing here is a pass/fail test: the
docs/speed.md quotes the figures with the machine they were measured on.

- overhead: `evalkit run` of mobile-unet on 10 s of the fixture clip with ground truth
  (a fresh process, everything included: imports, preflight, the streamed pass, the
  latency pass, the report) against a bare ``session.run`` loop over the same frames'
  real inputs, same threads, same machine, measured here one after the other (the faster of ONNX Runtime's
  spinning threads and none, the default evalkit uses).
- demo: `evalkit run suites/demo.yaml`, wall clock.
- memory: peak resident memory of the evalkit process (``VmHWM`` of the Python
  process itself, not its ffmpeg children) for 10 s and 120 s of audio.
- memory_long: the same without ground truth for 10 s, 120 s and 600 s of audio
  (``EVALKIT_BENCH_MEMORY_SECONDS=10,120`` for fewer), with the ratios to 10 s.
- workers: four single-threaded combinations with ``--workers 1`` and ``--workers 2``.

Beside each figure, its floor from the CPU time measured (user + system, the ffmpeg processes included):
with every core busy from start to end, CPU-seconds / cores is the least wall time that work can take. The
overhead's lowest reachable ratio, the demo's least seconds and the workers' greatest speed-up on this
machine follow from it, whatever the stages' overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("EVALKIT_FIXTURES", REPO / "data" / "fixtures"))
RESULTS = REPO / "reports" / "benchmarks" / "pipeline_speed.json"
CORES = os.cpu_count() or 1


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def cut_audio(seconds: float, out: Path) -> Path:
    """The fixture speech cut to ``seconds`` (looped when longer), 16 kHz mono WAV."""
    from evalkit.media.ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(FIXTURES / "clip" / "speech.wav"),
                    "-t", str(seconds), "-ac", "1", "-ar", "16000", str(out)], check=True)
    return out


def suite_file(folder: Path, models: list[str], audio: Path, threads: int = 2, timing: dict | None = None,
               name: str = "bench", backend: dict | None = None, ground_truth: bool = True) -> Path:
    """A one-input suite of fixture ``models`` on the fixture clip cut to ``audio``, with its ground truth
    (unless ``ground_truth`` is False); on the CPU with ``threads`` unless ``backend`` (a suite backend mapping)
    says otherwise."""
    clip = FIXTURES / "clip"
    data = {
        "name": name,
        "models": [{"name": m.replace("_", "-"), "generator": str(FIXTURES / "models" / f"{m}.onnx"),
                    "audio_encoder": str(FIXTURES / "models" / "audio_encoder.onnx")} for m in models],
        "inputs": [{"name": "talking_head", "video": str(clip / "talking_head.mkv"), "audio": str(audio),
                    "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(clip / "talking_head.mkv")}],
        "backends": [backend or {"name": "cpu", "provider": "CPUExecutionProvider",
                                 "session_options": {"intra_op_num_threads": threads}}],
        "metrics": {"trim_to_shortest": True},
    }
    if not ground_truth:
        del data["inputs"][0]["ground_truth"]
    if timing:
        data["timing"] = timing
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


LAST_CPU_SECONDS = [0.0]  # CPU seconds (user + system) of the last evalkit_run, its ffmpeg processes included


def evalkit_run(suite: Path, out: Path, *extra: str) -> tuple[float, int, Path]:
    """`evalkit run` in a fresh Python process: (wall seconds, peak RSS of that process in KB, run folder)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The process's own high-water mark (VmHWM), not getrusage's ru_maxrss: Linux carries ru_maxrss across
    # exec from the process that started it, so after this script's bare loop (hundreds of MB of inputs) every
    # child would report this script's peak.
    code = ("import sys\nfrom evalkit.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
            "print('MAXRSS', hwm, file=sys.stderr)\nsys.exit(rc)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "-q", "run", str(suite), "--out", str(out), *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU_SECONDS[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(f"evalkit run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rss = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS")))
    return wall, rss, Path(done.stdout.strip().splitlines()[-1])


def real_inputs(audio: Path, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The generator's inputs for the first ``frames`` frames of the fixture clip driven by ``audio``, prepared as
    evalkit's pipeline prepares them: images [n, 1, 6, H, W] and audio windows [n, 1, ...]."""
    from evalkit.config.contract import Contract
    from evalkit.config.suite import InputSpec
    from evalkit.pipeline.crop import CropPreparer
    from evalkit.pipeline.feature_windows import feature_window
    from evalkit.pipeline.generate import compute_audio_features, prepare_input, walk_template

    contract = Contract()
    clip = FIXTURES / "clip"
    spec = InputSpec(name="x", video=clip / "talking_head.mkv", audio=audio, crop_boxes=clip / "crop_boxes.txt")
    prepared = prepare_input(spec, contract)
    features = compute_audio_features(audio, FIXTURES / "models" / "audio_encoder.onnx", None, contract)
    n = min(frames, features.frames)
    preparer = CropPreparer(contract)
    images = np.empty((n, *contract.image_input_shape), np.float32)
    audios = np.empty((n, 1, *contract.audio_input_shape), np.float32)
    for i, (t, frame, _, _) in zip(range(n), walk_template(prepared.video, n, contract, None)):
        images[i] = preparer.prepare(frame, prepared.boxes[t])
        feature_window(features.features, i, contract, out=audios[i])
    return images, audios


def input_names(session) -> tuple[str, str]:
    """(image input, audio input) of a generator session: the image is the 6-channel one."""
    names = [i.name for i in session.get_inputs()]
    image_name = next(i.name for i in session.get_inputs() if len(i.shape) == 4 and i.shape[1] == 6)
    return image_name, next(x for x in names if x != image_name)


def bare_loop_seconds(model: Path, audio: Path, frames: int, threads: int) -> dict[bool, float]:
    """A bare ONNX Runtime loop over the same frames' real inputs (prepared once beforehand, not timed), timed
    with ONNX Runtime's pool threads spinning between runs (its own default: key True) and not (evalkit's
    default: key False), one session after the other on the same inputs."""
    import onnxruntime as ort

    images, audios = real_inputs(audio, frames)
    n = len(images)
    seconds = {}
    for spinning in (True, False):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        image_name, audio_name = input_names(session)
        for i in range(3):
            session.run(None, {image_name: images[i], audio_name: audios[i]})
        t0 = time.perf_counter()
        for i in range(n):
            session.run(None, {image_name: images[i], audio_name: audios[i]})
        seconds[spinning] = time.perf_counter() - t0
        del session
    return seconds


OVERHEAD_REPEATS = 3  # this VM's speed drifts (the same bare loop took 6.9 and 10.3 s ten minutes apart)


def overhead(work: Path) -> dict:
    """Run and bare loop one after the other, OVERHEAD_REPEATS times; the figure is the median ratio."""
    audio = cut_audio(10.0, work / "speech_10s.wav")
    suite = suite_file(work, ["mobile_unet"], audio)
    tries = []
    for k in range(OVERHEAD_REPEATS):
        wall, rss, run = evalkit_run(suite, work / f"runs{k}")
        cpu = LAST_CPU_SECONDS[0]
        entry = json.loads((run / "run.json").read_text())["runs"][0]
        # the baseline is the faster bare loop: with ONNX Runtime's default (spinning threads) or evalkit's (none)
        bare_each = bare_loop_seconds(FIXTURES / "models" / "mobile_unet.onnx", audio, entry["frames"], 2)
        bare = min(bare_each.values())
        tries.append({"evalkit_run_seconds": wall, "evalkit_run_cpu_seconds": cpu, "bare_loop_seconds": bare,
                      "bare_loop_seconds_spinning": bare_each[True], "bare_loop_seconds_no_spinning": bare_each[False],
                      "ratio": wall / bare, "pipeline_seconds": entry.get("pipeline_seconds"),
                      "generate_seconds": entry["generate_seconds"], "latency_pass_seconds": entry["timed_seconds"],
                      "batch_latency_seconds": {size: sum(v) / 1e3 for size, v in
                                                (entry.get("batch_timed_ms") or {}).items()},
                      "stage_seconds": entry["stage_seconds"]})
        print(f"overhead {k + 1}/{OVERHEAD_REPEATS}: evalkit run {wall:.1f} s ({cpu:.0f} CPU-s) for {entry['frames']} "
              f"frames; bare session.run loop {bare:.1f} s (spinning {bare_each[True]:.1f} s, not {bare_each[False]:.1f} s); ratio {wall / bare:.2f}x (streamed pass "
              f"{entry.get('pipeline_seconds') or 0:.1f} s)")
    median = sorted(tries, key=lambda t: t["ratio"])[len(tries) // 2]
    # With every core busy from start to end, the run's CPU work alone takes CPU-s / cores: its lowest ratio.
    floor = median["evalkit_run_cpu_seconds"] / CORES / median["bare_loop_seconds"]
    print(f"overhead: median ratio {median['ratio']:.2f}x; its CPU work on {CORES} cores, every core busy "
          f"throughout, could not take under {floor:.2f}x")
    return {"frames": entry["frames"], **median, "cpu_floor_ratio": floor, "tries": tries}


def demo(work: Path) -> dict:
    wall, rss, run = evalkit_run(REPO / "suites" / "demo.yaml", work / "demo")
    record = json.loads((run / "run.json").read_text())
    frames = sum(e.get("frames") or 0 for e in record["runs"])
    cpu = LAST_CPU_SECONDS[0]
    print(f"demo: {wall:.1f} s for {len(record['runs'])} combinations, {frames} frames, peak RSS {rss / 1024:.0f} MB, "
          f"{cpu:.0f} CPU-seconds (ffmpeg included): on {CORES} cores, every core busy throughout, not under "
          f"{cpu / CORES:.1f} s")
    return {"seconds": wall, "combinations": len(record["runs"]), "frames": frames, "peak_rss_mb": rss / 1024,
            "cpu_seconds": cpu, "cpu_floor_seconds": cpu / CORES}


def memory(work: Path) -> dict:
    out = {}
    timing = {"warmup": 2, "min_timed_frames": 10, "min_seconds": 0}
    for seconds in (10, 120):
        audio = cut_audio(seconds, work / f"speech_{seconds}s.wav")
        suite = suite_file(work, ["reference"], audio, timing=timing, name=f"memory{seconds}")
        wall, rss, run = evalkit_run(suite, work / "memory")
        out[f"{seconds}s"] = {"peak_rss_mb": rss / 1024, "seconds": wall}
        print(f"memory: {seconds:>3d} s of audio: peak RSS {rss / 1024:.0f} MB ({wall:.1f} s)")
    out["ratio_120_over_10"] = out["120s"]["peak_rss_mb"] / out["10s"]["peak_rss_mb"]
    print(f"memory: 120 s / 10 s = {out['ratio_120_over_10']:.3f}")
    return out


def memory_long(work: Path) -> dict:
    """Peak RSS of runs without ground truth for 10 s, 120 s and 600 s of audio (issue 23: the sync estimate
    streams, so nothing grows with the clip; aims 120 s <= 1.15x and 600 s <= 1.25x of 10 s)."""
    out = {}
    timing = {"warmup": 2, "min_timed_frames": 10, "min_seconds": 0}
    seconds_list = [int(s) for s in os.environ.get("EVALKIT_BENCH_MEMORY_SECONDS", "10,120,600").split(",")]
    for seconds in seconds_list:
        audio = cut_audio(seconds, work / f"speech_{seconds}s.wav")
        suite = suite_file(work, ["reference"], audio, timing=timing, name=f"memory_long{seconds}",
                           ground_truth=False)
        wall, rss, run = evalkit_run(suite, work / "memory_long")
        out[f"{seconds}s"] = {"peak_rss_mb": rss / 1024, "seconds": wall, "cpu_seconds": LAST_CPU_SECONDS[0]}
        print(f"memory_long: {seconds:>3d} s of audio, no ground truth: peak RSS {rss / 1024:.0f} MB "
              f"({wall:.1f} s, {LAST_CPU_SECONDS[0]:.0f} CPU-s)")
    base = out[f"{seconds_list[0]}s"]["peak_rss_mb"]
    for seconds in seconds_list[1:]:
        out[f"ratio_{seconds}_over_{seconds_list[0]}"] = out[f"{seconds}s"]["peak_rss_mb"] / base
        print(f"memory_long: {seconds} s / {seconds_list[0]} s = {out[f'{seconds}s']['peak_rss_mb'] / base:.3f}")
    return out


def workers(work: Path) -> dict:
    audio = cut_audio(6.0, work / "speech_6s.wav")
    timing = {"warmup": 2, "min_timed_frames": 20, "min_seconds": 0}
    suite = suite_file(work, ["reference", "lag2", "noisy", "mobile_unet"], audio, threads=1, timing=timing,
                       name="workers")
    out = {}
    for n in (1, 2):
        wall, _, _ = evalkit_run(suite, work / f"workers{n}", "--workers", str(n))
        out[f"workers_{n}_seconds"], out[f"workers_{n}_cpu_seconds"] = wall, LAST_CPU_SECONDS[0]
        print(f"workers: --workers {n}: {wall:.1f} s, {LAST_CPU_SECONDS[0]:.0f} CPU-s "
              f"({LAST_CPU_SECONDS[0] / wall:.2f} cores busy on average)")
    out["speedup"] = out["workers_1_seconds"] / out["workers_2_seconds"]
    # Two workers do at least one worker's CPU work; on CORES cores that takes at least CPU-s / CORES.
    out["speedup_bound"] = out["workers_1_seconds"] / (out["workers_1_cpu_seconds"] / CORES)
    print(f"workers: speed-up {out['speedup']:.2f}x; with one worker's CPU work on {CORES} cores, every core busy "
          f"throughout, at most {out['speedup_bound']:.2f}x")
    return out


PARTS = {"overhead": overhead, "demo": demo, "memory": memory, "memory_long": memory_long, "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["all"], choices=[*PARTS, "all"])
    args = parser.parse_args()
    parts = list(PARTS) if "all" in args.parts else args.parts
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = machine()
    print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
        for part in parts:
            results[part] = PARTS[part](Path(tmp)) | {"measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
