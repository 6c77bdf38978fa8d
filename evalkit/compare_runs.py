"""``evalkit compare RUN_A RUN_B``: one CSV and one HTML page comparing two run folders.

Runs are matched by model x backend x input. Per match: every numeric summary
field of A and B with the difference (B - A) and, for speed fields, the ratio
B / A; parity of B's raw outputs and pictures against A's (tolerances of B's
precision); and a side-by-side video (A | B). Numbers come from the two
run.json files and the runs' own output files.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pandas as pd

from evalkit.comparison import head_outputs, picture_parity
from evalkit.errors import UserError
from evalkit.metrics.parity import DEFAULT_TOLERANCES, compare_outputs
from evalkit.pipeline import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.record import HIGHER_IS_BETTER, SUMMARY_COLUMNS, load_run, number
from evalkit.report.side_by_side import side_by_side

SPEED_FIELDS = {"fps", "fps_end_to_end", "fps_batch4", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms",
                "latency_p99_ms"}
SHOWN_FIELDS = ["psnr_mean", "ssim_mean", "mp4_full_psnr_mean", "sync_offset_frames", "sync_confidence", "out_mean",
                "nan_count", "fps", "fps_end_to_end", "latency_p50_ms", "latency_p99_ms"]
TEXT_FIELDS = {"model", "backend", "input", "kind", "precision", "status", "reason", "parity_against"}


def compare_runs(run_a: Path, run_b: Path, out: Path) -> Path:
    a, b = load_run(run_a), load_run(run_b)
    ok_a = {(e["model"], e["backend"], e["input"]): e for e in a["runs"] if e.get("status") == "ok"}
    ok_b = {(e["model"], e["backend"], e["input"]): e for e in b["runs"] if e.get("status") == "ok"}
    common = [k for k in ok_a if k in ok_b]
    if not common:
        raise UserError(f"{run_a} and {run_b} share no model x backend x input that ran in both")
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
            rows.append({"model": key[0], "backend": key[1], "input": key[2], "field": field, "a": va, "b": vb,
                         "delta": delta, "ratio_b_over_a": ratio})
        atol, rtol = DEFAULT_TOLERANCES[eb.get("precision", "fp32")]
        ha, hb = head_outputs(run_a, ea), head_outputs(run_b, eb)
        n = min(len(ha), len(hb)) if ha is not None and hb is not None else 0
        tensor = compare_outputs(ha[:n], hb[:n], atol, rtol).to_dict() if n else None
        external = "external" in (ea.get("kind"), eb.get("kind"))
        picture = picture_parity(Path(run_a) / ea["folder"], Path(run_b) / eb["folder"],
                                 FRAMES_FULL if external else FRAMES_INNER)
        parity.append({"model": key[0], "backend": key[1], "input": key[2], "atol": atol, "rtol": rtol,
                       "tensor": tensor, "picture": picture})
        name = f"{'__'.join(key)}_a_vs_b.mp4"
        side_by_side(Path(run_a) / ea["folder"] / OUTPUT_MP4, Path(run_b) / eb["folder"] / OUTPUT_MP4, out / name,
                     min(ea["frames"], eb["frames"]))
        videos.append({"label": " / ".join(key), "href": name})
    table = pd.DataFrame(rows)
    tmp = out / ".comparison.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / "comparison.csv")
    shown = table[table["field"].isin(SHOWN_FIELDS)]
    same_machine = a["machine"].get("cpu") == b["machine"].get("cpu") and a["machine"].get("gpus") == b["machine"].get("gpus")
    env = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    html = env.get_template("compare.html.j2").render(
        a=a, b=b, run_a=str(run_a), run_b=str(run_b), rows=shown.to_dict("records"), parity=parity, videos=videos,
        same_machine=same_machine, higher=HIGHER_IS_BETTER, only_a=sorted(set(ok_a) - set(ok_b)),
        only_b=sorted(set(ok_b) - set(ok_a)), fmt=lambda v, d=4: "-" if v is None or v != v else f"{v:.{d}g}",
    )
    tmp = out / ".comparison.html.tmp"
    tmp.write_text(html)
    os.replace(tmp, out / "comparison.html")
    return out
