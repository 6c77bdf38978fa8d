"""An example external backend: evalkit's own pipeline in a separate process, speaking the external interface.

    python -m evalkit.examples.external_pipeline REQUEST.json [--shift-frames N]

It reads the request (see evalkit/pipeline/external.py), runs the generator with ONNX
Runtime on the CPU, and writes PNG frames to ``output_dir/frames/`` and its
inference latencies to ``output_dir/timings.json``. ``--shift-frames 1``
makes it deliberately wrong: frame i shows what frame i - 1 should (the
first frame repeated), so its mouth is one frame late.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2

from evalkit.config.contract import Contract
from evalkit.pipeline.generate import FRAMES_FULL, compute_audio_features, generate, prepare_input
from evalkit.pipeline.runner import OnnxRuntimeRunner
from evalkit.config.suite import BackendSpec, InputSpec, TimingSpec
from evalkit.media.frames import open_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("request")
    parser.add_argument("--shift-frames", type=int, default=0)
    args = parser.parse_args(argv)
    request = json.loads(Path(args.request).read_text())
    contract = Contract(**request["contract"])
    spec = InputSpec(name="external", video=request["video"], audio=request["audio"],
                     crop_boxes=request["crop_boxes"], landmarks=request["landmarks"])
    audio = compute_audio_features(Path(request["audio"]),
                                   Path(request["audio_encoder"]) if request["audio_encoder"] else None,
                                   Path(request["audio_features"]) if request["audio_features"] else None, contract)
    out = Path(request["output_dir"])
    frames_dir = out / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, OnnxRuntimeRunner(Path(request["model"]), contract,
                                                                   BackendSpec(name="external")) as runner:
        generated = generate(runner, audio, prepare_input(spec, contract), Path(tmp), label="external",
                             timing=TimingSpec(warmup=0, min_timed_frames=1, min_seconds=0), keep_outputs=0,
                             store_full_frames=True)
        source = open_frames(Path(tmp) / FRAMES_FULL)
        with source.reader() as frames:
            previous = []
            for i, frame in enumerate(frames):
                previous.append(frame.copy())
                shown = previous[max(0, len(previous) - 1 - args.shift_frames)]
                cv2.imwrite(str(frames_dir / f"{i:06d}.png"), shown[:, :, ::-1])
                previous = previous[-(args.shift_frames + 1):]
    timings = {"inference_ms": generated.times.inference_ms, "total_seconds": time.perf_counter() - t0}
    (out / "timings.json").write_text(json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
