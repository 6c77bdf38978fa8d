"""Backends of kind ``external``: another implementation of the whole pipeline, run as a program.

The interface, for a Go server, a mobile port or anything else:

1. evalkit writes ``request.json`` into an empty work folder and runs the
   suite's ``command`` with ``{request}`` replaced by that file's path,
   ``{output_dir}`` by the folder the program must write to, and ``{python}``
   by the Python that runs evalkit. The request::

       {"schema": "evalkit.external.v1",
        "model": "/abs/generator.onnx", "audio_encoder": "/abs/encoder.onnx" or null,
        "audio_features": "/abs/features.npy" or null,
        "video": "/abs/template.mp4", "audio": "/abs/speech.wav",
        "crop_boxes": "/abs/boxes.txt" or null, "landmarks": "/abs/lms_dir" or null,
        "contract": {... every contract field, see evalkit/config/contract.py ...},
        "frames": 317, "fps": 25.0, "output_dir": "/abs/out"}

2. The program writes the generated full frames to ``output_dir``: a folder
   ``frames/`` of images named in frame order (PNG, lossless: preferred) or an
   ``output.mp4``; and optionally ``timings.json`` with ``{"inference_ms": [...]}``
   (its own per-frame inference latencies) and any other numbers it likes.
   A non-zero exit status fails the run with the program's last output lines.

3. evalkit turns those frames into the same files as its own runs
   (frames_full.mkv, frames_inner.mkv cut with the same crop boxes, and
   output.mp4 with the audio), so the same metrics, sync and picture-level
   parity apply. Raw tensors are not part of the interface: an external
   backend has no tensor-level parity.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer
from evalkit.errors import UserError
from evalkit.media.frames import open_frames
from evalkit.pipeline.generate import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4, PreparedInput
from evalkit.config.suite import BackendSpec, ModelSpec
from evalkit.media.decode import ping_pong_index
from evalkit.media.encode import VideoWriter

REQUEST = "request.json"
SCHEMA = "evalkit.external.v1"


def write_request(work: Path, model: ModelSpec, prepared: PreparedInput, contract: Contract, frames: int) -> Path:
    spec = prepared.spec
    out = work / "output"
    out.mkdir(parents=True)
    request = {
        "schema": SCHEMA,
        "model": str(model.generator),
        "audio_encoder": str(model.audio_encoder) if model.audio_encoder else None,
        "audio_features": str(model.audio_features) if model.audio_features else None,
        "video": str(spec.video), "audio": str(spec.audio),
        "crop_boxes": str(spec.crop_boxes) if spec.crop_boxes else None,
        "landmarks": str(spec.landmarks) if spec.landmarks else None,
        "contract": contract.model_dump(mode="json"),
        "frames": frames, "fps": contract.fps, "output_dir": str(out),
    }
    path = work / REQUEST
    path.write_text(json.dumps(request, indent=1))
    return path


def run_external(backend: BackendSpec, model: ModelSpec, prepared: PreparedInput, contract: Contract, frames: int,
                 combo_dir: Path) -> dict:
    """Run the command, import its frames into ``combo_dir``; returns what to record (frames, seconds, timings)."""
    work = combo_dir / "external"
    request = write_request(work, model, prepared, contract, frames)
    out = work / "output"
    args = [a.replace("{request}", str(request)).replace("{output_dir}", str(out)).replace("{python}", sys.executable)
            for a in backend.command]
    t0 = time.perf_counter()
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=backend.timeout_seconds, check=False)
    except FileNotFoundError:
        raise UserError(f"backend '{backend.name}': command not found: {args[0]}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"backend '{backend.name}': command ran longer than {backend.timeout_seconds:g} s") from None
    seconds = time.perf_counter() - t0
    (work / "stdout.txt").write_text(result.stdout)
    (work / "stderr.txt").write_text(result.stderr)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise UserError(f"backend '{backend.name}': command exited with {result.returncode}: {tail}")
    source = out / "frames" if (out / "frames").is_dir() else out / "output.mp4"
    if not source.exists():
        raise UserError(f"backend '{backend.name}': the command wrote neither {out}/frames/ nor {out}/output.mp4")
    imported = import_frames(open_frames(source), prepared, contract, combo_dir, backend.name)
    timings_path = out / "timings.json"
    timings = read_timings(timings_path, backend.name) if timings_path.is_file() else {}
    return {"frames": imported, "command_seconds": seconds, "external_timings": timings,
            "timed_ms": [float(v) for v in timings.get("inference_ms", [])]}


def read_timings(path: Path, name: str) -> dict:
    """An external program's ``timings.json``: an object whose ``inference_ms`` (if any) is a list of finite ms."""
    try:
        timings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"backend '{name}': {path} is not JSON ({' '.join(str(exc).split())}); expected "
                        '{"inference_ms": [...]}') from None
    samples = timings.get("inference_ms", []) if isinstance(timings, dict) else None
    if not isinstance(samples, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in samples):
        raise UserError(f"backend '{name}': {path}: expected an object with \"inference_ms\": a list of finite "
                        "non-negative milliseconds")
    return timings


def import_frames(source, prepared: PreparedInput, contract: Contract, combo_dir: Path, name: str) -> int:
    """Write the external frames as evalkit's own run files; returns the frame count."""
    video = prepared.video
    if (source.width, source.height) != (video.width, video.height):
        raise UserError(f"backend '{name}': its frames are {source.width}x{source.height}, the template is "
                        f"{video.width}x{video.height}")
    cropper = CropPreparer(contract)
    w, h = video.width, video.height
    with (
        source.reader() as frames,
        VideoWriter(combo_dir / OUTPUT_MP4, w, h, contract.fps, kind="mp4", audio=prepared.spec.audio) as mp4,
        VideoWriter(combo_dir / FRAMES_FULL, w, h, contract.fps, kind="frames") as full,
        VideoWriter(combo_dir / FRAMES_INNER, contract.inner_width, contract.inner_height, contract.fps,
                    kind="frames") as inner,
    ):
        count = 0
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            mp4.write(frame)
            full.write(frame)
            inner.write(np.ascontiguousarray(
                cropper.crop_frame(frame, prepared.boxes[ping_pong_index(count, video.frames)])))
            count += 1
    return count
