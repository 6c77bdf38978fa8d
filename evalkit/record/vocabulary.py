"""The record's vocabulary: names that the record's keys and columns are made of.

This module is on evalkit's ground floor (tests/import_graph.py, ``LAYERS``): it imports nothing of
evalkit, and everything may import it. So the suite (``config/``), the record (``record/``), the gates
(``ci/``) and the views (``report/``) share one set of words without importing each other, and readers of a
record never import the pipeline or the measuring code that produced it.
"""

from __future__ import annotations

REGIONS = {
    "inner": "the model's 320x320 region, lossless output frames",
    "mouth": "the mouth_box within the model's region, lossless output frames",
    "full": "the pasted-back full frame, lossless output frames",
    "mp4_face": "the face window decoded from output.mp4 (H.264 yuv420p): what a viewer sees of the face "
                "(metrics.viewer_region: face, the default; the window the side-by-side video shows); SSIM at the "
                "viewer's scale (run.json's viewer.ssim_scale)",
    "mp4_full": "the whole frame decoded from output.mp4 (H.264 yuv420p) (metrics.viewer_region: full); SSIM at "
                "the viewer's scale",
}
"""Regions measured against the ground truth (keys of an entry's ``fidelity``), with what each is."""

PIPELINE_STAGES = ("decode", "preprocess", "inference", "paste", "encode")
"""Stages of evalkit's own pipeline whose seconds an entry records (``stage_seconds``)."""

RUN_STATUSES = ("ok", "skipped", "failed")
"""An entry's ``status``: it ran; it could not run here (``reason`` says why); it failed (``reason``, ``errors``)."""

DEFAULT_PROTOCOL = "reconstruction"
"""The protocol of a suite that names none, and of a record from before protocols."""

SPEED_ALIASES = {"fps": "throughput_fps", "fps_end_to_end": "throughput_end_to_end_fps",
                 "fps_batch4": "throughput_batch4_fps"}
"""Old speed field names (records, baselines and suites before the rename) -> today's names.

The old ``fps`` was 1000 / mean latency, which equals ``throughput_fps`` (count / sum of the samples)."""

FIELD_COLUMNS = ["lmd_mouth_mean", "lmd_mouth_max", "lmd_all_mean", "identity_template_mean", "identity_template_max",
                 "identity_gt_mean", "identity_gt_max", "identity_frames", "lm_sync_offset_frames",
                 "lm_sync_confidence", "lm_sync_reliable", "lm_sync_agrees", "cpbd_mouth", "cpbd_mouth_template",
                 "lpips_mean", "lpips_max", "fid", "fid_samples", "fvd", "fvd_clips"]
"""The summary.csv columns of the field's metrics (``record.field``): LMD (pixels of the full frame; mouth
points 48-67, all 68), identity descriptor distances (below 0.6: one person), the sync of the landmarks' mouth
opening and whether it agrees with the built-in estimate (both reliable), CPBD of the mouth (output and
template), LPIPS, FID and FVD with their sample counts."""

FIELD_COUNT_COLUMNS = {"identity_frames", "lm_sync_offset_frames", "lm_sync_reliable", "lm_sync_agrees",
                       "fid_samples", "fvd_clips"}

FIELD_HIGHER_IS_BETTER = {
    "lmd_mouth_mean": False, "lmd_mouth_max": False, "lmd_all_mean": False,
    "identity_template_mean": False, "identity_template_max": False, "identity_gt_mean": False,
    "identity_gt_max": False, "lm_sync_confidence": True, "cpbd_mouth": True,
    "lpips_mean": False, "lpips_max": False, "fid": False, "fvd": False,
}

ID_COLUMNS = ["model", "backend", "input", "protocol", "kind", "precision", "status", "verdict", "reason", "frames"]


def region_columns(region: str) -> list[str]:
    """The five summary.csv columns of one region's fidelity (the inner region's have no prefix)."""
    prefix = "" if region == "inner" else f"{region}_"
    return [f"{prefix}psnr_mean", f"{prefix}psnr_min", f"{prefix}psnr_inf_frames", f"{prefix}ssim_mean",
            f"{prefix}ssim_min"]


FIDELITY_COLUMNS = [c for region in REGIONS for c in region_columns(region)]
OUTPUT_COLUMNS = ["out_mean", "out_std", "out_min", "out_max", "out_p1", "out_p50", "out_p99",
                  "out_fraction_outside", "nan_count", "inf_count", "wrap_count"]
COPY_COLUMNS = ["copy_mouth_psnr", "copy_frames_fraction", "copy_flag", "mouth_sharpness_ratio"]
SPEED_COLUMNS = ["throughput_fps", "throughput_end_to_end_fps", "latency_mean_ms", "latency_std_ms", "latency_p50_ms",
                 "latency_p90_ms", "latency_p99_ms", "latency_cv", "warmup_iterations", "timed_inferences", "first_inference_ms",
                 "cpu_throughput_fps", "cpu_latency_mean_ms", "cpu_latency_p50_ms", "cpu_latency_p99_ms",
                 "cpu_latency_cv", "timing_others_share", "session_seconds", "intra_op_threads", "throughput_batch4_fps", "host_to_device_ms", "device_to_host_ms",
                 "audio_features_seconds"] + [f"{stage}_seconds" for stage in PIPELINE_STAGES]
PARITY_COLUMNS = ["parity_against", "parity_passed", "parity_max_abs", "parity_p99_abs", "parity_required_atol",
                  "parity_failing_elements", "parity_nan_mismatches", "parity_psnr_mean", "parity_ssim_min",
                  "golden_passed", "golden_max_abs", "golden_failing_elements"]
SYNC_COLUMNS = ["sync_offset_frames", "sync_offset_ms", "sync_confidence", "sync_reliable", "sync_reason",
                "sync_no_signal", "gt_sync_offset_frames", "gt_sync_reliable",
                "sync_offset_vs_ground_truth_frames", "video_lag_frames", "video_lag_confidence", "video_lag_reliable",
                "lse_d", "lse_c", "syncnet_offset_frames"]
COUNT_COLUMNS = {"frames", "video_lag_frames", "video_lag_reliable", "copy_flag", "sync_offset_frames", "sync_reliable", "sync_no_signal", "gt_sync_offset_frames",
                 "gt_sync_reliable", "sync_offset_vs_ground_truth_frames", "syncnet_offset_frames", "nan_count",
                 "inf_count", "wrap_count", "warmup_iterations", "timed_inferences", "intra_op_threads",
                 "parity_passed", "parity_failing_elements", "parity_nan_mismatches", "golden_passed",
                 "golden_failing_elements"} | {c for c in FIDELITY_COLUMNS if c.endswith("_inf_frames")} | (
                 FIELD_COUNT_COLUMNS)
"""Columns of whole numbers (counts, frame offsets, 0/1 flags): summary.csv writes them as 317, not 317.0."""
TEXT_COLUMNS = ("model", "backend", "input", "protocol", "kind", "precision", "status", "verdict", "reason",
                "sync_reason", "parity_against")
"""The columns of summary.csv that hold words, not numbers."""
SUMMARY_COLUMNS = (ID_COLUMNS + FIDELITY_COLUMNS + COPY_COLUMNS + SYNC_COLUMNS + OUTPUT_COLUMNS + SPEED_COLUMNS
                   + PARITY_COLUMNS + FIELD_COLUMNS)
"""The columns of summary.csv, in order. Unprefixed psnr/ssim columns are the model's inner region."""

HIGHER_IS_BETTER = {c: True for c in FIDELITY_COLUMNS if "inf_frames" not in c} | {
    "throughput_fps": True, "throughput_end_to_end_fps": True, "throughput_batch4_fps": True,
    "cpu_throughput_fps": True, "cpu_latency_mean_ms": False, "cpu_latency_p50_ms": False, "cpu_latency_p99_ms": False,
    "latency_mean_ms": False, "latency_p50_ms": False, "latency_p90_ms": False, "latency_p99_ms": False,
    "nan_count": False, "inf_count": False, "out_fraction_outside": False,
    "sync_confidence": True, "video_lag_confidence": True, "lse_c": True, "lse_d": False,
    "copy_mouth_psnr": False, "copy_frames_fraction": False, "copy_flag": False, "wrap_count": False,
} | FIELD_HIGHER_IS_BETTER
"""Direction of the columns that have one (the report marks best and worst by it)."""


def canonical_field(field: str) -> str:
    """Today's name of a summary field: old speed names (``fps``, ...) map to ``throughput_fps``, ... ."""
    return SPEED_ALIASES.get(field, field)


def unknown_fields(gates) -> list[str]:
    """The fields of ``gates`` (objects with a ``field``) that name no summary.csv column, old names allowed."""
    return sorted({g.field for g in gates if canonical_field(g.field) not in SUMMARY_COLUMNS})
