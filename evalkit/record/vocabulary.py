"""The record's vocabulary: names that the record's keys and columns are made of.

They sit on the record's floor so that readers of a record (``ci/``,
``report/``, ``record/summary``) never import the pipeline or the measuring
code that produced it.
"""

from __future__ import annotations

REGIONS = {
    "inner": "the model's 320x320 region, lossless output frames",
    "mouth": "the mouth_box within the model's region, lossless output frames",
    "full": "the pasted-back full frame, lossless output frames",
    "mp4_face": "the face window decoded from output.mp4 (H.264 yuv420p): what a viewer sees of the face "
                "(metrics.viewer_region: face, the default; the window the side-by-side video shows)",
    "mp4_full": "the whole frame decoded from output.mp4 (H.264 yuv420p) (metrics.viewer_region: full)",
}
"""Regions measured against the ground truth (keys of an entry's ``fidelity``), with what each is."""

PIPELINE_STAGES = ("decode", "preprocess", "inference", "paste", "encode")
"""Stages of evalkit's own pipeline whose seconds an entry records (``stage_seconds``)."""

RUN_STATUSES = ("ok", "skipped", "failed")
"""An entry's ``status``: it ran; it could not run here (``reason`` says why); it failed (``reason``, ``errors``)."""
