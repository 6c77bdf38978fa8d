"""The run record's per-run summary row, and JSON that keeps non-finite numbers.

``run.json`` is the source of truth: every number that a CSV or the HTML
report shows is computed here, once, when the run is recorded. JSON has no
``inf`` or ``nan``; they are stored as the strings "inf", "-inf" and "nan"
(``float()`` reads them back), so a PSNR of identical frames is kept, not lost.
"""

from __future__ import annotations

import json
import math

import numpy as np
from pathlib import Path
from pydantic import ValidationError

from evalkit.errors import UserError
from evalkit.metrics import latency_summary, summarise
from evalkit.record.field import field_row
from evalkit.record.layout import RUN_RECORD
from evalkit.record.parts import Real, RecordPart
from evalkit.record.runkey import RunKey
from evalkit.record.vocabulary import (COPY_COLUMNS, COUNT_COLUMNS, DEFAULT_PROTOCOL,  # noqa: F401 (re-exported)
                                      FIDELITY_COLUMNS, HIGHER_IS_BETTER, ID_COLUMNS, OUTPUT_COLUMNS,
                                      PARITY_COLUMNS, PIPELINE_STAGES, REGIONS, SPEED_COLUMNS, SUMMARY_COLUMNS,
                                      SYNC_COLUMNS, TEXT_COLUMNS)
from evalkit.record.vocabulary import region_columns as _region_columns

from evalkit.record.summary_row import Summary, SummaryBase  # noqa: E402,F401 (the row's type; re-exported)


def summary_row(entry, parity=None) -> Summary:
    """The summary.csv row of one entry of the record (a ``record.schema.RunEntry``); ``parity``: the record's
    comparison of this run against its parity baseline (``ParityComparison``), if any."""
    row = {c: getattr(entry, c, None) for c in ID_COLUMNS}
    for region, per_frame in (entry.fidelity or {}).items():
        cols = _region_columns(region)
        p, s = summarise(per_frame.psnr), summarise(per_frame.ssim)
        row.update(zip(cols, [p["mean"], p["min"], p["inf_count"], s["mean"], s["min"]]))
    sync = entry.sync
    if sync:
        reliable = sync_reliable(sync)
        row.update(sync_offset_frames=sync.offset_frames, sync_offset_ms=sync.offset_ms,
                   sync_confidence=sync.confidence, sync_no_signal=int(sync.no_signal),
                   sync_reliable=int(reliable), sync_reason="" if reliable else sync.reason or "unreliable")
    gt_sync = entry.ground_truth_sync
    if gt_sync:
        row["gt_sync_offset_frames"] = gt_sync.offset_frames
        row["gt_sync_reliable"] = int(sync_reliable(gt_sync))
        if sync and sync.offset_frames is not None and gt_sync.offset_frames is not None:
            row["sync_offset_vs_ground_truth_frames"] = sync.offset_frames - gt_sync.offset_frames
    lag = entry.video_lag
    if lag:
        row.update(video_lag_frames=lag.offset_frames, video_lag_confidence=lag.confidence,
                   video_lag_reliable=int(sync_reliable(lag)))
    syncnet = entry.syncnet
    if syncnet:
        row.update(lse_d=syncnet.lse_d, lse_c=syncnet.lse_c, syncnet_offset_frames=syncnet.offset_frames)
    copy = entry.copy_
    if copy and copy.mouth_mse:
        mse = np.asarray(copy.mouth_mse, np.float64)
        near = mouth_psnr_from_mse(mse) >= copy.psnr_db
        whole = float(mouth_psnr_from_mse(np.array([mse.mean()]))[0])
        row.update(copy_mouth_psnr=whole, copy_frames_fraction=float(near.mean()),
                   copy_flag=int(whole >= copy.psnr_db))
    sharp = entry.mouth_sharpness
    if sharp and sharp.template > 0:
        row["mouth_sharpness_ratio"] = sharp.output / sharp.template
    stats = entry.output_stats
    if stats:
        row.update(out_mean=stats.mean, out_std=stats.std, out_min=stats.min, out_max=stats.max,
                   out_p1=stats.p1, out_p50=stats.p50, out_p99=stats.p99,
                   out_fraction_outside=stats.fraction_outside_0_1, nan_count=stats.nan_count,
                   inf_count=stats.inf_count, wrap_count=stats.wrap_count)
    if entry.status == "ok":
        lat = latency_summary(entry.timed_ms or [])
        row.update(throughput_fps=lat["throughput_fps"], latency_mean_ms=lat["mean"], latency_std_ms=lat["std"],
                   latency_p50_ms=lat["p50"], latency_p90_ms=lat["p90"], latency_p99_ms=lat["p99"], latency_cv=lat["cv"],
                   timed_inferences=lat["count"])
        if entry.timed_cpu_ms:  # the CPU time of each timed call (records before it: none)
            lat_cpu = latency_summary(entry.timed_cpu_ms)
            row.update(cpu_throughput_fps=lat_cpu["throughput_fps"], cpu_latency_mean_ms=lat_cpu["mean"],
                       cpu_latency_p50_ms=lat_cpu["p50"], cpu_latency_p99_ms=lat_cpu["p99"],
                       cpu_latency_cv=lat_cpu["cv"])
        row["timing_others_share"] = entry.timing_load.others_share if entry.timing_load else None
        if entry.stage_seconds is not None:  # evalkit's own pipeline
            stages = entry.stage_seconds
            # The streamed pass's wall clock (its stages overlap); records before it: the stages' sum.
            streamed = entry.pipeline_seconds
            pipeline_seconds = entry.audio_features_seconds + (
                streamed if streamed is not None else sum(stages[s] for s in PIPELINE_STAGES))
            batch4 = (entry.batch_timed_ms or {}).get("4")
            copies = entry.copy_ms or {}
            row.update(
                throughput_end_to_end_fps=entry.frames / pipeline_seconds,
                warmup_iterations=len(entry.warmup_ms or []),
                first_inference_ms=entry.first_inference_ms, session_seconds=entry.session_seconds,
                intra_op_threads=entry.threads.intra_op if entry.threads else None,
                throughput_batch4_fps=4 * latency_summary(batch4)["throughput_fps"] if batch4 else None,
                host_to_device_ms=latency_summary(copies["host_to_device"])["mean"] if copies else None,
                device_to_host_ms=latency_summary(copies["device_to_host"])["mean"] if copies else None,
                audio_features_seconds=entry.audio_features_seconds,
                **{f"{s}_seconds": stages[s] for s in PIPELINE_STAGES},
            )
        elif entry.command_seconds is not None:  # an external command: its whole run is its end-to-end time
            row["throughput_end_to_end_fps"] = entry.frames / entry.command_seconds
    if parity is not None:
        tensor, picture = parity.tensor or {}, parity.picture
        row.update(parity_against=parity.reference, parity_passed=int(parity.passed),
                   parity_max_abs=tensor.get("max_abs"), parity_p99_abs=tensor.get("p99_abs"),
                   parity_required_atol=tensor.get("required_atol"),
                   parity_failing_elements=tensor.get("failing_elements"),
                   parity_nan_mismatches=tensor.get("nan_mismatches"), parity_psnr_mean=picture.get("psnr_mean"),
                   parity_ssim_min=picture.get("ssim_min"))
    if entry.verdict:  # given after the gates (record.verdict.add_verdicts): a row made before them has none yet
        row["verdict"] = entry.verdict.text
    golden = entry.golden
    if golden:
        row.update(golden_passed=int(golden.passed), golden_max_abs=golden.max_abs,
                   golden_failing_elements=golden.failing_elements)
    row.update(field_row(entry.field))
    return Summary(**row)


def sync_reliable(sync) -> bool:
    """Whether a recorded sync estimate (``record.schema.Sync``) may be acted on."""
    return bool(sync.reliable)


def mouth_psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    """PSNR (dB, 8-bit peak 255) of mean squared errors; 0 gives inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / np.asarray(mse, np.float64))


def run_key(entry: dict) -> RunKey:
    """(model, backend, input, protocol): what identifies one run of a record, in every view and comparison
    (``record.runkey.RunKey``)."""
    return RunKey.of(entry)


def run_label(entry: dict) -> str:
    """"model / backend / input", and " / protocol" when it is not the default: how views name a run."""
    return RunKey.of(entry).label


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


def __getattr__(name: str):
    """Names this module used to hold, now record.schema's (it imports this module's ``Summary``)."""
    from evalkit.record import schema

    if name == "RUN_KIND":
        return schema.RECORD_KIND
    if name == "RECORD_KEYS":  # top-level keys of run.json besides kind and schema_version
        return tuple(k for k in schema.RunRecord.model_fields if k not in ("kind", "schema_version"))
    if name in ("KNOWN_SCHEMA_VERSIONS", "RECORD_KIND", "RunRecord"):
        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_run(folder: Path):
    """The record of a finished run folder (or of a baseline folder): a ``record.schema.RunRecord``, validated
    and brought to today's version, which is what the views read (attributes: ``record.runs[0].summary.psnr_mean``).

    Every key of the schema is present, None where a run did not produce that part; ``to_json_dict()`` gives it
    back as JSON values (non-finite floats as "inf", "-inf", "nan"). A record that is not JSON, not an object, of
    another kind or of an unknown schema version, or that does not match the schema, is a UserError naming the
    file and what was expected. Older records are migrated (``record.schema.migrate``: e.g. old speed names
    ``fps`` become ``throughput_fps``, parity kept once).
    """
    from evalkit.record.schema import RECORD_KIND, describe_error, validate_record

    path = Path(folder) / RUN_RECORD
    if not path.is_file():
        raise UserError(f"{folder}: not a run folder (no {RUN_RECORD}; a folder named .*.partial is unfinished)")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: damaged run record, expected the JSON object evalkit wrote ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: damaged run record, expected a JSON object, found a {type(record).__name__}")
    if record.get("kind") != RECORD_KIND:
        raise UserError(f"{path}: kind is {record.get('kind')!r}, expected {RECORD_KIND!r} (not an evalkit run "
                        "record)")
    try:
        return validate_record(record)
    except ValidationError as exc:
        raise UserError(f"{path}: damaged run record, {describe_error(exc)} (the schema: `evalkit record "
                        "schema`)") from None
    except ValueError as exc:  # an unknown schema version
        raise UserError(f"{path}: {exc}") from None


load_run_record = load_run  # the old name of the typed loader
