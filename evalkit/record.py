"""The run record's per-run summary row, and JSON that keeps non-finite numbers.

``run.json`` is the source of truth: every number that a CSV or the HTML
report shows is computed here, once, when the run is recorded. JSON has no
``inf`` or ``nan``; they are stored as the strings "inf", "-inf" and "nan"
(``float()`` reads them back), so a PSNR of identical frames is kept, not lost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from evalkit.errors import UserError
from evalkit.evaluate import REGIONS
from evalkit.metrics import latency_summary, summarise
from evalkit.pipeline import PIPELINE_STAGES

ID_COLUMNS = ["model", "backend", "input", "kind", "precision", "status", "reason", "frames"]


def _region_columns(region: str) -> list[str]:
    prefix = "" if region == "inner" else f"{region}_"
    return [f"{prefix}psnr_mean", f"{prefix}psnr_min", f"{prefix}psnr_inf_frames", f"{prefix}ssim_mean",
            f"{prefix}ssim_min"]


FIDELITY_COLUMNS = [c for region in REGIONS for c in _region_columns(region)]
OUTPUT_COLUMNS = ["out_mean", "out_std", "out_min", "out_max", "out_p1", "out_p50", "out_p99",
                  "out_fraction_outside", "nan_count", "inf_count"]
SPEED_COLUMNS = ["fps", "fps_end_to_end", "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p90_ms",
                 "latency_p99_ms", "latency_cv", "warmup_iterations", "timed_inferences", "first_inference_ms",
                 "session_seconds", "intra_op_threads", "fps_batch4", "host_to_device_ms", "device_to_host_ms",
                 "audio_features_seconds"] + [f"{stage}_seconds" for stage in PIPELINE_STAGES]
PARITY_COLUMNS = ["parity_against", "parity_passed", "parity_max_abs", "parity_p99_abs", "parity_required_atol",
                  "parity_failing_elements", "parity_nan_mismatches", "parity_psnr_mean", "parity_ssim_min",
                  "golden_passed", "golden_max_abs", "golden_failing_elements"]
SYNC_COLUMNS = ["sync_offset_frames", "sync_offset_ms", "sync_confidence", "sync_no_signal", "gt_sync_offset_frames",
                "sync_offset_vs_ground_truth_frames", "lse_d", "lse_c", "syncnet_offset_frames"]
SUMMARY_COLUMNS = ID_COLUMNS + FIDELITY_COLUMNS + SYNC_COLUMNS + OUTPUT_COLUMNS + SPEED_COLUMNS + PARITY_COLUMNS
"""The columns of summary.csv, in order. Unprefixed psnr/ssim columns are the model's inner region."""

HIGHER_IS_BETTER = {c: True for c in FIDELITY_COLUMNS if "inf_frames" not in c} | {
    "fps": True, "fps_end_to_end": True,
    "latency_mean_ms": False, "latency_p50_ms": False, "latency_p90_ms": False, "latency_p99_ms": False,
    "nan_count": False, "inf_count": False, "out_fraction_outside": False,
    "sync_confidence": True, "lse_c": True, "lse_d": False,
}
"""Direction of the columns that have one (the report marks best and worst by it)."""


def summary_row(entry: dict) -> dict:
    """The summary.csv row of one model x backend x input entry of the record."""
    row = {c: entry.get(c) for c in ID_COLUMNS}
    for region, per_frame in (entry.get("fidelity") or {}).items():
        cols = _region_columns(region)
        p, s = summarise(per_frame["psnr"]), summarise(per_frame["ssim"])
        row.update(zip(cols, [p["mean"], p["min"], p["inf_count"], s["mean"], s["min"]]))
    sync = entry.get("sync")
    if sync:
        row.update(sync_offset_frames=sync["offset_frames"], sync_offset_ms=sync["offset_ms"],
                   sync_confidence=sync["confidence"], sync_no_signal=int(sync["no_signal"]))
    gt_sync = entry.get("ground_truth_sync")
    if gt_sync:
        row["gt_sync_offset_frames"] = gt_sync["offset_frames"]
        if sync and sync["offset_frames"] is not None and gt_sync["offset_frames"] is not None:
            row["sync_offset_vs_ground_truth_frames"] = sync["offset_frames"] - gt_sync["offset_frames"]
    syncnet = entry.get("syncnet")
    if syncnet:
        row.update(lse_d=syncnet["lse_d"], lse_c=syncnet["lse_c"], syncnet_offset_frames=syncnet["offset_frames"])
    stats = entry.get("output_stats")
    if stats:
        row.update(out_mean=stats["mean"], out_std=stats["std"], out_min=stats["min"], out_max=stats["max"],
                   out_p1=stats["p1"], out_p50=stats["p50"], out_p99=stats["p99"],
                   out_fraction_outside=stats["fraction_outside_0_1"], nan_count=stats["nan_count"],
                   inf_count=stats["inf_count"])
    if entry.get("status") == "ok":
        lat = latency_summary(entry.get("timed_ms") or [])
        row.update(fps=lat["fps"], latency_mean_ms=lat["mean"], latency_std_ms=lat["std"], latency_p50_ms=lat["p50"],
                   latency_p90_ms=lat["p90"], latency_p99_ms=lat["p99"], latency_cv=lat["cv"],
                   timed_inferences=lat["count"])
        if "stage_seconds" in entry:  # evalkit's own pipeline
            stages = entry["stage_seconds"]
            pipeline_seconds = entry["audio_features_seconds"] + sum(stages[s] for s in PIPELINE_STAGES)
            batch4 = entry.get("batch_timed_ms", {}).get("4")
            copies = entry.get("copy_ms") or {}
            row.update(
                fps_end_to_end=entry["frames"] / pipeline_seconds, warmup_iterations=len(entry.get("warmup_ms", [])),
                first_inference_ms=entry.get("first_inference_ms"), session_seconds=entry["session_seconds"],
                intra_op_threads=(entry.get("threads") or {}).get("intra_op"),
                fps_batch4=4 * latency_summary(batch4)["fps"] if batch4 else None,
                host_to_device_ms=latency_summary(copies["host_to_device"])["mean"] if copies else None,
                device_to_host_ms=latency_summary(copies["device_to_host"])["mean"] if copies else None,
                audio_features_seconds=entry["audio_features_seconds"],
                **{f"{s}_seconds": stages[s] for s in PIPELINE_STAGES},
            )
        elif "command_seconds" in entry:  # an external command: its whole run is its end-to-end time
            row["fps_end_to_end"] = entry["frames"] / entry["command_seconds"]
    parity = entry.get("parity")
    if parity:
        tensor = parity.get("tensor") or {}
        picture = parity.get("picture") or {}
        row.update(parity_against=parity["reference"], parity_passed=int(parity["passed"]),
                   parity_max_abs=tensor.get("max_abs"), parity_p99_abs=tensor.get("p99_abs"),
                   parity_required_atol=tensor.get("required_atol"),
                   parity_failing_elements=tensor.get("failing_elements"),
                   parity_nan_mismatches=tensor.get("nan_mismatches"), parity_psnr_mean=picture.get("psnr_mean"),
                   parity_ssim_min=picture.get("ssim_min"))
    golden = entry.get("golden")
    if golden:
        row.update(golden_passed=int(golden["passed"]), golden_max_abs=golden.get("max_abs"),
                   golden_failing_elements=golden.get("failing_elements"))
    return {c: row.get(c) for c in SUMMARY_COLUMNS}


def json_safe(value):
    """A copy of ``value`` with non-finite floats as the strings "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def number(value) -> float | None:
    """A record value as a float ("inf" -> inf); None stays None."""
    return None if value is None else float(value)


RUN_RECORD = "run.json"


def load_run(folder: Path) -> dict:
    """The record of a finished run folder (or of a baseline folder)."""
    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        raise UserError(f"{folder}: not a run folder (no {RUN_RECORD}; a folder named .*.partial is unfinished)")
    return json.loads(path.read_text())
