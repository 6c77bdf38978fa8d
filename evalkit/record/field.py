"""The summary.csv row of the field's metrics (an entry's ``field``: ``measure.field.measure_field``); the columns are
``record.vocabulary.FIELD_COLUMNS``."""

from __future__ import annotations

import math

import numpy as np

from evalkit.record.vocabulary import (FIELD_COLUMNS, FIELD_COUNT_COLUMNS,  # noqa: F401 (re-exported)
                                      FIELD_HIGHER_IS_BETTER)


def _finite(values) -> np.ndarray:
    x = np.asarray([float(v) for v in values or []], np.float64)
    return x[np.isfinite(x)]


def _mean_max(values) -> tuple[float | None, float | None]:
    x = _finite(values)
    return (float(x.mean()), float(x.max())) if x.size else (None, None)


def field_row(field) -> dict:
    """The FIELD_COLUMNS of an entry's ``field`` (a ``record.schema.FieldMetrics``; absent parts: no key)."""
    if not field:
        return {}
    row: dict = {}
    cpbd = _finite(field.cpbd_mouth)
    if cpbd.size:
        row["cpbd_mouth"] = float(cpbd.mean())
    template = _finite(field.cpbd_mouth_template)
    if template.size:
        row["cpbd_mouth_template"] = float(template.mean())
    face = field.face
    if face:
        row["lmd_mouth_mean"], row["lmd_mouth_max"] = _mean_max(face.lmd_mouth)
        row["lmd_all_mean"] = _mean_max(face.lmd_all)[0]
        row["identity_template_mean"], row["identity_template_max"] = _mean_max(face.identity_template)
        row["identity_gt_mean"], row["identity_gt_max"] = _mean_max(face.identity_ground_truth)
        row["identity_frames"] = len(face.identity_frames or [])
        sync = face.sync
        if sync:
            row.update(lm_sync_offset_frames=sync.offset_frames, lm_sync_confidence=sync.confidence,
                       lm_sync_reliable=int(bool(sync.reliable)))
        if face.agrees_with_builtin is not None:
            row["lm_sync_agrees"] = int(face.agrees_with_builtin)
    if field.lpips:
        row["lpips_mean"], row["lpips_max"] = _mean_max(field.lpips["values"])
    for name, count in (("fid", "samples"), ("fvd", "clips")):
        part = getattr(field, name)
        if part:
            value = float(part["value"])
            row[name] = None if math.isnan(value) else value
            row[f"{name}_{count}"] = part[count]
    return row
