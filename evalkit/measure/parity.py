"""Comparing runs with each other: backends of one run (parity), a golden set, or two run folders.

Tensor level: the raw outputs of the first ``parity.frames`` frames, kept in
each run's ``head_outputs.npz`` (same inputs for every backend of a model x
input, so any difference is the backend's). Picture level: PSNR and SSIM
between the two runs' lossless inner frames, for every frame. An external
backend has no raw tensors, so only its pictures are compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.errors import UserError
from evalkit.media.ffmpeg import probe_video
from evalkit.measure.golden import load_golden
from evalkit.metrics import psnr, ssim, summarise
from evalkit.metrics.parity import DEFAULT_TOLERANCES, compare_output_sets
from evalkit.record.runkey import RunKey
from evalkit.record.schema import Golden, ParityComparison, RunEntry, RunRecord
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, HEAD_OUTPUTS
from evalkit.media.decode import FrameReader

PICTURE_MIN_PSNR = 40.0  # dB on every frame: below this two implementations' pictures visibly differ
BATCH = 16


def head_outputs(run_dir: Path, entry: RunEntry) -> np.ndarray | None:
    path = Path(run_dir) / entry.folder / HEAD_OUTPUTS
    if entry.kind == "external" or not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return data["outputs"]
    except Exception as exc:  # a cut or edited file: zipfile, zlib, numpy and KeyError each say it their way
        why = "no 'outputs' array" if isinstance(exc, KeyError) else "damaged: " + (
            " ".join(str(exc).split())[:120] or type(exc).__name__)
        raise UserError(f"{path}: not the raw outputs evalkit wrote ({why}); the run folder was changed after it "
                        "was written: run its suite again to rewrite it") from None


def picture_parity(dir_a: Path, dir_b: Path, frames_file: str = FRAMES_INNER) -> dict:
    """PSNR and SSIM of B's frames against A's, every frame (the shorter count is compared, and said).

    ``frames_file``: the inner frames (the model's own pixels) or, when one side is an external
    command whose inner region is cut from its full frames, the full frames.
    """
    info_a, info_b = probe_video(dir_a / frames_file), probe_video(dir_b / frames_file)
    if (info_a.width, info_a.height) != (info_b.width, info_b.height):
        return {"error": f"inner frames differ in size: {info_a.width}x{info_a.height} vs {info_b.width}x{info_b.height}"}
    n = min(info_a.frames, info_b.frames)
    a = np.empty((BATCH, info_a.height, info_a.width, 3), np.uint8)
    b = np.empty_like(a)
    p_all, s_all = [], []
    with FrameReader(info_a) as ra, FrameReader(info_b) as rb:
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for j in range(k):
                ra.read_into(a[j])
                rb.read_into(b[j])
            p_all += psnr(a[:k], b[:k]).tolist()
            s_all += ssim(a[:k], b[:k]).tolist()
    p, s = summarise(p_all), summarise(s_all)
    return {"region": "full" if frames_file == FRAMES_FULL else "inner", "frames": n, "frames_a": info_a.frames, "frames_b": info_b.frames, "psnr_mean": p["mean"],
            "psnr_min": p["min"], "identical_frames": p["inf_count"], "ssim_mean": s["mean"], "ssim_min": s["min"],
            "passed": bool(info_a.frames == info_b.frames and p["min"] >= PICTURE_MIN_PSNR)}


def tolerances(suite, precision: str, atol: float | None = None, rtol: float | None = None) -> tuple[float, float]:
    default_atol, default_rtol = suite.parity.tolerances.get(precision, DEFAULT_TOLERANCES[precision])
    return (default_atol if atol is None else atol), (default_rtol if rtol is None else rtol)


def compare_entries(run_dir: Path, reference: RunEntry, candidate: RunEntry, atol: float, rtol: float,
                    precision: str, baseline: bool = False) -> ParityComparison:
    """Tensor and picture parity of ``candidate`` against ``reference`` (two entries of one run, of one model x
    input x protocol: ``RunKey``); ``baseline``: ``reference`` is ``candidate``'s parity baseline backend."""
    outputs = compare_output_sets(head_outputs(run_dir, reference), head_outputs(run_dir, candidate), atol, rtol)
    tensor = outputs.tensor()
    external = "external" in (reference.kind, candidate.kind)
    picture = picture_parity(Path(run_dir) / reference.folder, Path(run_dir) / candidate.folder,
                             FRAMES_FULL if external else FRAMES_INNER)
    passed = (tensor["passed"] if tensor else not outputs.shapes_differ) and picture.get("passed", False)
    return ParityComparison(
        reference=reference.key.where, candidate=candidate.key.where, precision=precision, atol=atol, rtol=rtol,
        passed=bool(passed), tensor=tensor, tensor_note=outputs.note, picture=picture, baseline=baseline)


def add_parity(runs: list[RunEntry], suite, run_dir: Path, log=print) -> list[ParityComparison]:
    """Every backend of a model x input x protocol against the baseline backend, plus the suite's explicit pairs
    (per input and protocol): only runs of one ``RunKey`` but their backend are compared, never a model's
    distant or dubbed run with its reconstruction run. The record's ``parity``: each comparison once, the
    baseline ones marked ``baseline`` (what the candidate's summary row shows).
    """
    results = []
    ok = [e for e in runs if e.status == "ok"]
    by_key = {e.key: e for e in ok}
    groups: dict[tuple[str, str, str], list[RunEntry]] = {}
    for entry in ok:
        groups.setdefault(entry.key.without_backend(), []).append(entry)
    for (model, input_name, protocol), group in groups.items():
        if suite.parity.baseline_backend is not None:
            baseline = by_key.get(RunKey(model, suite.parity.baseline_backend, input_name, protocol))
        else:
            baseline = next((e for e in group if e.kind == "onnxruntime"), group[0])
        if baseline is None:
            continue
        for entry in group:
            if entry is baseline:
                continue
            atol, rtol = tolerances(suite, entry.precision)
            results.append(compare_entries(run_dir, baseline, entry, atol, rtol, entry.precision, baseline=True))
    protocols = list(dict.fromkeys(e.protocol for e in ok))
    for pair in suite.parity.pairs:
        for spec in suite.inputs:
            for protocol in protocols:
                ref = by_key.get(RunKey(pair.reference.model, pair.reference.backend, spec.name, protocol))
                cand = by_key.get(RunKey(pair.candidate.model, pair.candidate.backend, spec.name, protocol))
                if ref is None or cand is None:
                    if ref is None and cand is None:
                        continue  # neither side ran under this protocol (e.g. an external backend's)
                    log(f"parity pair {pair.reference.model}/{pair.reference.backend} vs {pair.candidate.model}/"
                        f"{pair.candidate.backend} ({spec.name}, {protocol}): skipped, one side did not run")
                    continue
                atol, rtol = tolerances(suite, pair.precision, pair.atol, pair.rtol)
                results.append(compare_entries(run_dir, ref, cand, atol, rtol, pair.precision))
    return results


def compare_with_golden(record: RunRecord, suite, run_dir: Path) -> None:
    """Each ONNX Runtime entry's raw outputs against the golden set (tolerances of the backend's precision):
    its ``golden``."""
    for entry in record.runs:
        if entry.status != "ok" or entry.kind != "onnxruntime":
            continue
        key = entry.key
        found = load_golden(suite.golden, key.model, key.input, key.protocol)
        if found is None:
            entry.golden = Golden(passed=False, note=f"the golden set has no {key.model} x {key.input} x "
                                                     f"{key.protocol}")
            continue
        golden, manifest = found
        atol, rtol = tolerances(suite, entry.precision)
        outputs = compare_output_sets(golden, head_outputs(run_dir, entry), atol, rtol)
        if outputs.result is None:
            entry.golden = Golden(passed=False, note=outputs.note)
            continue
        same_model = manifest["model_sha256"] == record.models[entry.model].generator.sha256
        same_inputs = manifest["inputs_sha256"] == entry.head_inputs_sha256
        entry.golden = Golden(**outputs.result.to_dict(), frames=outputs.frames, golden_backend=manifest["backend"],
                              same_model_file=same_model, same_input_tensors=same_inputs)


def golden_items(record: RunRecord, run_dir: Path) -> list[dict]:
    """What `--save-golden` stores: per model x input x protocol, the first ONNX Runtime backend's raw outputs."""
    items, seen = [], set()
    for entry in record.runs:
        key = entry.key.without_backend()
        if entry.status != "ok" or entry.kind != "onnxruntime" or key in seen:
            continue
        seen.add(key)
        items.append({"model": entry.model, "input": entry.input, "protocol": entry.protocol,
                      "backend": entry.backend, "outputs": head_outputs(run_dir, entry),
                      "model_sha256": record.models[entry.model].generator.sha256,
                      "inputs_sha256": entry.head_inputs_sha256,
                      "input_files": record.inputs[entry.input].model_dump(mode="json")})
    if not items:
        raise UserError("nothing to save as golden: no ONNX Runtime backend ran")
    return items
