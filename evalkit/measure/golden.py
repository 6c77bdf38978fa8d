"""Golden outputs: raw generator outputs saved once, compared with later runs like another backend.

``evalkit run SUITE --save-golden DIR`` writes, per model x input x protocol (from the
first backend that ran it), ``<model>__<input>[__<protocol>].npz`` (compressed: the raw
outputs of the first ``parity.frames`` frames) and one ``golden.json``
manifest: the model's SHA-256, the SHA-256 of the input files and of the
exact input tensors the outputs came from, the frames, the backend, the
evalkit version. No giant JSON: tensors live in the .npz files only. A suite
with ``golden: DIR`` compares every run's outputs with the golden set.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from evalkit import __version__
from evalkit.config.suite import DEFAULT_PROTOCOL
from evalkit.errors import UserError
from evalkit.record.io import atomic_output, write_text_atomic

MANIFEST = "golden.json"
SCHEMA = "evalkit.golden.v1"
ENTRY_KEYS = ("model", "input", "backend", "file", "model_sha256", "inputs_sha256")


def golden_key(model: str, input_name: str, protocol: str = DEFAULT_PROTOCOL) -> str:
    """A golden entry's name: model__input, and __protocol when it is not the default (sets saved before
    protocols hold the default protocol's outputs under model__input)."""
    base = f"{model}__{input_name}"
    return base if protocol == DEFAULT_PROTOCOL else f"{base}__{protocol}"


def read_manifest(manifest_path: Path) -> dict:
    """A golden set's golden.json, checked: a JSON object of schema evalkit.golden.v1 whose entries name their files."""
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{manifest_path}: damaged golden manifest, expected the JSON object evalkit wrote ({exc}); "
                        "save the set again with `evalkit run SUITE --save-golden DIR`") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA or not isinstance(manifest.get("entries"), dict):
        raise UserError(f"{manifest_path}: damaged golden manifest, expected an object with schema {SCHEMA!r} and "
                        "an 'entries' object")
    for key, entry in manifest["entries"].items():
        if not isinstance(entry, dict) or any(k not in entry for k in ENTRY_KEYS) or not isinstance(entry["file"], str) \
                or "/" in entry["file"] or "\\" in entry["file"] or entry["file"].startswith("."):
            raise UserError(f"{manifest_path}: damaged golden manifest, entries[{key!r}] must be an object with "
                            f"{', '.join(ENTRY_KEYS)} whose 'file' names a .npz file in the golden folder")
    return manifest


def save_golden(folder: Path, items: list[dict]) -> Path:
    """``items``: dicts with model, input, backend, outputs (array), model_sha256, inputs_sha256, input_files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    manifest = read_manifest(manifest_path) if manifest_path.is_file() else {"schema": SCHEMA, "entries": {}}
    for item in items:
        protocol = item.get("protocol", DEFAULT_PROTOCOL)
        key = golden_key(item["model"], item["input"], protocol)
        with atomic_output(folder / f"{key}.npz") as tmp:
            np.savez_compressed(tmp, outputs=item["outputs"])
        manifest["entries"][key] = {
            "model": item["model"], "input": item["input"], "protocol": protocol, "backend": item["backend"],
            "file": f"{key}.npz",
            "frames": int(len(item["outputs"])), "shape": list(item["outputs"].shape),
            "model_sha256": item["model_sha256"], "inputs_sha256": item["inputs_sha256"],
            "input_files": item["input_files"], "evalkit": __version__,
            "saved_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return folder


def load_golden(folder: Path, model: str, input_name: str,
                protocol: str = DEFAULT_PROTOCOL) -> tuple[np.ndarray, dict] | None:
    """The golden outputs and manifest entry for a model x input x protocol, or None when the set has none."""
    manifest_path = Path(folder) / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"golden folder {folder}: no {MANIFEST} (save one with `evalkit run SUITE --save-golden DIR`)")
    entry = read_manifest(manifest_path)["entries"].get(golden_key(model, input_name, protocol))
    if entry is None:
        return None
    path = Path(folder) / entry["file"]
    try:
        with np.load(path) as data:
            return data["outputs"], entry
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: damaged golden outputs, expected the .npz evalkit saved with an 'outputs' array "
                        f"({exc}); save the set again with `evalkit run SUITE --save-golden DIR`") from None
