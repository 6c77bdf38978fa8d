"""Golden outputs: raw generator outputs saved once, compared with later runs like another backend.

``evalkit run SUITE --save-golden DIR`` writes, per model x input (from the
first backend that ran it), ``<model>__<input>.npz`` (compressed: the raw
outputs of the first ``parity.frames`` frames) and one ``golden.json``
manifest: the model's SHA-256, the SHA-256 of the input files and of the
exact input tensors the outputs came from, the frames, the backend, the
evalkit version. No giant JSON: tensors live in the .npz files only. A suite
with ``golden: DIR`` compares every run's outputs with the golden set.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from evalkit import __version__
from evalkit.errors import UserError

MANIFEST = "golden.json"
SCHEMA = "evalkit.golden.v1"


def golden_key(model: str, input_name: str) -> str:
    return f"{model}__{input_name}"


def save_golden(folder: Path, items: list[dict]) -> Path:
    """``items``: dicts with model, input, backend, outputs (array), model_sha256, inputs_sha256, input_files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"schema": SCHEMA, "entries": {}}
    for item in items:
        key = golden_key(item["model"], item["input"])
        tmp = folder / f".{key}.tmp.npz"
        np.savez_compressed(tmp, outputs=item["outputs"])
        os.replace(tmp, folder / f"{key}.npz")
        manifest["entries"][key] = {
            "model": item["model"], "input": item["input"], "backend": item["backend"], "file": f"{key}.npz",
            "frames": int(len(item["outputs"])), "shape": list(item["outputs"].shape),
            "model_sha256": item["model_sha256"], "inputs_sha256": item["inputs_sha256"],
            "input_files": item["input_files"], "evalkit": __version__,
            "saved_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    return folder


def load_golden(folder: Path, model: str, input_name: str) -> tuple[np.ndarray, dict] | None:
    """The golden outputs and manifest entry for a model x input, or None when the set has none."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"golden folder {folder}: no {MANIFEST} (save one with `evalkit run SUITE --save-golden DIR`)")
    entry = json.loads(manifest_path.read_text())["entries"].get(golden_key(model, input_name))
    if entry is None:
        return None
    with np.load(Path(folder) / entry["file"]) as data:
        return data["outputs"], entry
