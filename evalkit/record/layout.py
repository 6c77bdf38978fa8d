"""Every file name of a run folder, in one place.

A run folder ``<out>/<suite-name>/<run-id>/`` holds the record and its views
at the top, and one folder per model x backend x input x protocol (the
"combination": ``run.combo_folder``) with what that run generated and the
files its views show. A view finds a file by these names, never by a path
outside the folder, so a run moved to another machine still renders.
"""

from __future__ import annotations

# --- the run folder's top level -----------------------------------------------------------------------------
RUN_RECORD = "run.json"  # the record: the source of truth (record.schema.RunRecord)
SUMMARY_CSV = "summary.csv"  # one row per combination (record.summary.SUMMARY_COLUMNS)
FRAMES_CSV = "frames.csv"  # one row per frame, region and combination
PARITY_CSV = "parity.csv"  # backend against backend
REPORT_HTML = "report.html"  # the self-contained page
PARTIAL_SUFFIX = ".partial"  # ".<run-id>.partial": a run folder being written (renamed when complete)

# --- one combination's folder ---------------------------------------------------------------------------------
OUTPUT_MP4 = "output.mp4"  # what a viewer sees: H.264 yuv420p + AAC
FRAMES_FULL = "frames_full.mkv"  # exact generated full frames (lossless H.264 in RGB)
FRAMES_INNER = "frames_inner.mkv"  # exact generated inner regions (lossless H.264 in RGB), the model's own pixels
HEAD_OUTPUTS = "head_outputs.npz"  # raw model outputs of the first parity.frames frames
SIDE_BY_SIDE = "side_by_side.mp4"  # ground truth | output, made when the run is recorded
WORST_FRAMES_JSON = "worst_frames.json"  # the worst frames' numbers and thumbnail names, made when recorded


def worst_frame_jpeg(frame: int) -> str:
    """The thumbnail (ground truth | output | difference) of one of a combination's worst frames."""
    return f"worst_frame_{frame:06d}.jpg"
