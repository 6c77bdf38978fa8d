"""``evalkit compare RUN_A RUN_B``: one CSV and one HTML page comparing two run folders.

Runs are matched by model x backend x input. Per match: every numeric summary
field of A and B with the difference (B - A) and, for speed fields, the ratio
B / A and, for the speed fields computed from the raw timed samples
(throughput_fps and the latency statistics), the p-value of a one-sided
Mann-Whitney U test of the two runs' latency samples in the direction the
statistic moved: the page colours a speed difference only when p < SPEED_ALPHA,
the same test the speed gates use; parity of B's raw outputs and pictures against A's (tolerances of B's
precision); and a side-by-side video (A | B). Numbers come from the two
run.json files and the runs' own output files. A baseline folder (``evalkit baseline set``: the record and
tables, no videos) compares by numbers only: no picture parity and no video where one side has no files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from evalkit.ci.baseline import is_baseline
from evalkit.measure.parity import head_outputs, picture_parity
from evalkit.errors import UserError
from evalkit.ci.gates import SPEED_ALPHA, SPEED_FIELDS
from evalkit.metrics.latency import SAMPLED_STATISTICS
from evalkit.metrics.parity import DEFAULT_TOLERANCES, compare_outputs
from evalkit.record.io import atomic_output, write_text_atomic
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.record.summary import HIGHER_IS_BETTER, SUMMARY_COLUMNS, load_run, number, run_key
from evalkit.media.side_by_side import side_by_side
from evalkit.report.templating import render

SHOWN_FIELDS = ["psnr_mean", "ssim_mean", "mp4_full_psnr_mean", "sync_offset_frames", "sync_confidence", "out_mean",
                "nan_count", "throughput_fps", "throughput_end_to_end_fps", "latency_p50_ms", "latency_p99_ms"]


def speed_change_p(field: str, delta: float | None, samples_a, samples_b) -> float | None:
    """One-sided Mann-Whitney p that B's latencies moved the way ``field`` moved (None: no samples or no change).

    Slower (throughput down, latency up) tests B's latencies "greater" than A's; faster tests "less"."""
    if field not in SAMPLED_STATISTICS or not samples_a or not samples_b or delta is None or not delta == delta \
            or delta == 0:
        return None
    slower = (delta < 0) if SAMPLED_STATISTICS[field][1] else (delta > 0)
    a, b = np.asarray(samples_a, float), np.asarray(samples_b, float)
    return float(scipy.stats.mannwhitneyu(b, a, alternative="greater" if slower else "less").pvalue)
TEXT_FIELDS = {"model", "backend", "input", "protocol", "kind", "precision", "status", "reason", "sync_reason",
               "parity_against"}


def compare_runs(run_a: Path, run_b: Path, out: Path) -> Path:
    a, b = load_run(run_a), load_run(run_b)
    ok_a = {run_key(e): e for e in a["runs"] if e["status"] == "ok"}
    ok_b = {run_key(e): e for e in b["runs"] if e["status"] == "ok"}
    common = [k for k in ok_a if k in ok_b]
    if not common:
        raise UserError(f"{run_a} and {run_b} share no model x backend x input x protocol that ran in both")
    out.mkdir(parents=True, exist_ok=True)
    rows, parity, videos = [], [], []
    for key in common:
        ea, eb = ok_a[key], ok_b[key]
        for field in SUMMARY_COLUMNS:
            if field in TEXT_FIELDS:
                continue
            va, vb = number(ea["summary"].get(field)), number(eb["summary"].get(field))
            if va is None and vb is None:
                continue
            delta = vb - va if va is not None and vb is not None else None
            ratio = vb / va if field in SPEED_FIELDS and va and vb is not None else None
            p = speed_change_p(field, delta, [number(v) for v in ea["timed_ms"] or []],
                               [number(v) for v in eb["timed_ms"] or []])
            rows.append({"model": key[0], "backend": key[1], "input": key[2], "protocol": key[3], "field": field,
                         "a": va, "b": vb,
                         "delta": delta, "ratio_b_over_a": ratio, "mann_whitney_p": p})
        atol, rtol = DEFAULT_TOLERANCES[eb["precision"]]
        ha, hb = head_outputs(run_a, ea), head_outputs(run_b, eb)
        n = min(len(ha), len(hb)) if ha is not None and hb is not None else 0
        tensor = compare_outputs(ha[:n], hb[:n], atol, rtol).to_dict() if n else None
        external = "external" in (ea["kind"], eb["kind"])
        dir_a, dir_b = Path(run_a) / ea["folder"], Path(run_b) / eb["folder"]
        frames_file = FRAMES_FULL if external else FRAMES_INNER
        # A baseline (evalkit baseline set) keeps the record and tables, no videos: its side is numbers only.
        picture = (picture_parity(dir_a, dir_b, frames_file) if _both_have(dir_a, dir_b, frames_file)
                   else {"missing": frames_file})
        parity.append({"model": key[0], "backend": key[1], "input": key[2], "protocol": key[3], "atol": atol,
                       "rtol": rtol,
                       "tensor": tensor, "picture": picture})
        if _both_have(dir_a, dir_b, OUTPUT_MP4):
            name = f"{'__'.join(key)}_a_vs_b.mp4"
            window = _face_window(a, ea)
            side_by_side(dir_a / OUTPUT_MP4, dir_b / OUTPUT_MP4, out / name, min(ea["frames"], eb["frames"]),
                         window=window)
            videos.append({"label": " / ".join(key) + (", around the face" if window else ", whole frames"),
                           "href": name})
    table = pd.DataFrame(rows)
    with atomic_output(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    shown = table[table["field"].isin(SHOWN_FIELDS)]
    same_machine = a["machine"].get("cpu") == b["machine"].get("cpu") and a["machine"].get("gpus") == b["machine"].get("gpus")
    html = render("compare.html.j2",
        a=a, b=b, run_a=Path(run_a).resolve().name, run_b=Path(run_b).resolve().name, rows=shown.to_dict("records"), parity=parity, videos=videos,
        same_machine=same_machine, baseline_a=is_baseline(run_a), baseline_b=is_baseline(run_b), higher=HIGHER_IS_BETTER, only_a=sorted(set(ok_a) - set(ok_b)),
        only_b=sorted(set(ok_b) - set(ok_a)), speed=SPEED_FIELDS, alpha=SPEED_ALPHA,
        fmt=lambda v, d=4: "-" if v is None else "nan" if v != v else f"{v:.{d}g}",
    )
    write_text_atomic(out / "comparison.html", html)
    return out


def _face_window(record: dict, entry: dict) -> tuple[int, int, int, int] | None:
    """The part of the frames that run A's crop boxes show, with a margin (as the report's side-by-side video),
    or None (whole frames) when those boxes are not on this machine."""
    from evalkit.measure.view_assets import face_window_of, input_boxes

    try:
        return face_window_of(record, entry, input_boxes(record, entry))
    except (OSError, UserError):
        return None


def _both_have(dir_a: Path, dir_b: Path, name: str) -> bool:
    return (dir_a / name).is_file() and (dir_b / name).is_file()
