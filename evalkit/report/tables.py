"""summary.csv (one row per model x backend x input x protocol) and frames.csv (tidy: one row per frame x run x
region, the run named by its RunKey: model, backend, input, protocol)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit.record.io import atomic_output
from evalkit.record.layout import FRAMES_CSV, PARITY_CSV, SUMMARY_CSV  # noqa: F401 (re-exported)
from evalkit.record.summary import COUNT_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS, number

FRAMES_COLUMNS = ["model", "backend", "input", "protocol", "region", "frame", "psnr", "ssim", "latency_ms"]


def summary_table(record) -> pd.DataFrame:
    """summary.csv of ``record`` (a ``record.schema.RunRecord``): its entries' summary rows."""
    rows = [entry.summary.as_row() for entry in record.runs]
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    numeric = [c for c in SUMMARY_COLUMNS if c not in TEXT_COLUMNS]
    table[numeric] = table[numeric].map(number).astype("float64")
    for column in COUNT_COLUMNS:  # whole numbers as such (317, not 317.0); an empty cell stays empty
        values = table[column]
        if values.notna().any() and (values.dropna() % 1 == 0).all():
            table[column] = values.astype("Int64")
    return table


def frames_table(record) -> pd.DataFrame:
    parts = []
    for entry in record.runs:
        fidelity = entry.fidelity
        if not fidelity:
            continue
        latency = list(entry.inference_ms or entry.timed_ms or [])
        for region, values in fidelity.items():
            n = len(values.psnr)
            latency = (latency + [None] * n)[:n]
            parts.append(pd.DataFrame({
                "model": entry.model, "backend": entry.backend, "input": entry.input,
                "protocol": entry.protocol, "region": region,
                "frame": range(n), "psnr": list(values.psnr),
                "ssim": list(values.ssim), "latency_ms": latency[:n],
            }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FRAMES_COLUMNS)


PARITY_COLUMNS = ["reference", "candidate", "precision", "passed"]
"""The columns every parity.csv has, even with no comparison in the run (then it is a header alone)."""


def parity_table(record) -> pd.DataFrame:
    """One row per comparison: the tensor statistics (when both sides have raw outputs) and the picture ones."""
    rows = []
    for result in record.parity:
        tensor, picture = result.tensor or {}, result.picture
        rows.append({"reference": result.reference, "candidate": result.candidate,
                     "precision": result.precision, "passed": result.passed,
                     **{f"tensor_{k}": number(v) if k != "passed" else v for k, v in tensor.items()},
                     **{f"picture_{k}": v for k, v in picture.items()}})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=PARITY_COLUMNS)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False)


def write_tables(run_dir: Path, record) -> None:
    _write_csv(summary_table(record), run_dir / SUMMARY_CSV)
    _write_csv(frames_table(record), run_dir / FRAMES_CSV)
    _write_csv(parity_table(record), run_dir / PARITY_CSV)
