"""report.html: one self-contained page (plots embedded as PNG, no network) rendered from the run record."""

from __future__ import annotations

import math
import os
from pathlib import Path

import jinja2
import numpy as np

from evalkit.contract import Contract
from evalkit.crop import CropPreparer, load_crop_boxes, load_landmark_boxes
from evalkit.evaluate import REGIONS
from evalkit.ffmpeg_binary import probe_video
from evalkit.metrics.latency import HIGH_CV
from evalkit.pipeline import FRAMES_INNER, OUTPUT_MP4
from evalkit.record import HIGHER_IS_BETTER, number
from evalkit.report import plots
from evalkit.report.side_by_side import side_by_side
from evalkit.video_decode import FrameReader, ping_pong_index

REPORT_HTML = "report.html"
SIDE_BY_SIDE = "side_by_side.mp4"
WORST_FRAMES = 5
TABLE_COLUMNS = [  # (column, header, decimals)
    ("psnr_mean", "PSNR mean (dB)", 2), ("psnr_min", "PSNR min", 2), ("ssim_mean", "SSIM mean", 4),
    ("ssim_min", "SSIM min", 4), ("mouth_psnr_mean", "mouth PSNR", 2), ("mouth_ssim_mean", "mouth SSIM", 4),
    ("full_psnr_mean", "full-frame PSNR", 2), ("sync_offset_frames", "sync offset (frames)", 0),
    ("sync_confidence", "sync conf.", 3), ("gt_sync_offset_frames", "source offset", 0), ("lse_d", "LSE-D", 3),
    ("lse_c", "LSE-C", 3), ("mp4_full_psnr_mean", "MP4 PSNR", 2),
    ("mp4_full_ssim_mean", "MP4 SSIM", 4), ("out_mean", "out mean", 4), ("out_std", "out std", 4),
    ("out_min", "out min", 3), ("out_max", "out max", 3), ("nan_count", "NaN", 0), ("inf_count", "Inf", 0),
    ("fps", "inference FPS", 1), ("fps_end_to_end", "end-to-end FPS", 1), ("latency_p50_ms", "p50 ms", 2),
    ("latency_p99_ms", "p99 ms", 2),
]


def _fmt(value, decimals: int) -> str:
    v = number(value)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:,.{decimals}f}" if decimals else f"{int(v):+d}" if v < 0 else f"{int(v):,d}"


def summary_rows(record: dict) -> list[dict]:
    """Table cells with best and worst marked per column (among finished runs, when they differ)."""
    entries = record["runs"]
    ok = [e for e in entries if e.get("status") == "ok"]
    marks: dict[tuple[int, str], str] = {}
    for col, _, _ in TABLE_COLUMNS:
        if col not in HIGHER_IS_BETTER:
            continue
        values = [(i, number(e["summary"].get(col))) for i, e in enumerate(entries) if e in ok]
        values = [(i, v) for i, v in values if v is not None and not math.isnan(v)]
        if len(values) < 2 or min(v for _, v in values) == max(v for _, v in values):
            continue
        pick = max if HIGHER_IS_BETTER[col] else min
        other = min if HIGHER_IS_BETTER[col] else max
        best, worst = pick(v for _, v in values), other(v for _, v in values)
        for i, v in values:
            marks[(i, col)] = "best" if v == best else ("worst" if v == worst else "")
    rows = []
    for i, e in enumerate(entries):
        s = e["summary"]
        cells = [{"text": _fmt(s.get(col), d), "mark": marks.get((i, col), "")} for col, _, d in TABLE_COLUMNS]
        rows.append({"model": e["model"], "backend": e["backend"], "input": e["input"], "status": e.get("status"),
                     "reason": e.get("reason") or "", "frames": _fmt(s.get("frames"), 0), "cells": cells})
    return rows


def parity_row(result: dict) -> dict:
    tensor, picture = result.get("tensor") or {}, result.get("picture") or {}
    return {"reference": result["reference"], "candidate": result["candidate"], "precision": result["precision"],
            "passed": result["passed"], "tol": f"atol {result['atol']:g}, rtol {result['rtol']:g}",
            "max_abs": _fmt(tensor.get("max_abs"), 7) if tensor else "-",
            "median_abs": _fmt(tensor.get("median_abs"), 7) if tensor else "-",
            "p99_abs": _fmt(tensor.get("p99_abs"), 7) if tensor else "-",
            "max_rel": _fmt(tensor.get("max_rel"), 5) if tensor else "-",
            "required": (f"atol {number(tensor['required_atol']):.2e} / rtol {number(tensor['required_rtol']):.2e}"
                         if tensor else "-"),
            "failing": (f"{tensor['failing_elements']:,d} of {tensor['elements']:,d}" if tensor
                        else result.get("tensor_note") or "-"),
            "nan": tensor.get("nan_mismatches", "-") if tensor else "-",
            "psnr": _fmt(picture.get("psnr_mean"), 2), "psnr_min": _fmt(picture.get("psnr_min"), 2),
            "ssim_min": _fmt(picture.get("ssim_min"), 5)}


def sync_sentences(entries: list[dict]) -> list[str]:
    """One sentence per run: its offset, and how it compares with the source's own."""
    lines = []
    for e in entries:
        label = f"{e['model']} / {e['backend']} / {e['input']}"
        sync, gt = e.get("sync") or {}, e.get("ground_truth_sync") or {}
        if not sync or sync["no_signal"]:
            lines.append(f"{label}: no sync signal ({sync.get('reason', 'not measured')}).")
            continue
        text = (f"{label}: offset {sync['offset_frames']:+d} frames ({sync['offset_ms']:+.0f} ms), "
                f"confidence {sync['confidence']:.3f}")
        if gt and not gt["no_signal"]:
            delta = sync["offset_frames"] - gt["offset_frames"]
            relation = "in step with" if delta == 0 else f"{abs(delta)} frame{'s' if abs(delta) != 1 else ''} " + (
                "later than" if delta > 0 else "earlier than")
            text += f"; the source itself is at {gt['offset_frames']:+d}: the model is {relation} the source"
        if e.get("syncnet"):
            sn = e["syncnet"]
            text += f"; SyncNet: LSE-D {sn['lse_d']:.3f}, LSE-C {sn['lse_c']:.3f}, offset {sn['offset_frames']:+d}"
        lines.append(text + ".")
    return lines


def _input_boxes(record: dict, input_name: str, contract: Contract) -> np.ndarray:
    facts = record["inputs"][input_name]
    if facts.get("crop_boxes"):
        return load_crop_boxes(Path(facts["crop_boxes"]["path"]))
    return load_landmark_boxes(Path(facts["landmarks"]), contract)


def worst_frames(run_dir: Path, record: dict, entry: dict) -> list[dict]:
    """The WORST_FRAMES frames of lowest inner-region PSNR: ground truth | output | amplified difference."""
    psnr = np.array([number(v) for v in entry["fidelity"]["inner"]["psnr"]])
    order = [int(i) for i in np.argsort(psnr, kind="stable")[:WORST_FRAMES]]
    wanted = set(order)
    facts = record["inputs"][entry["input"]]
    contract = Contract(**record["models"][entry["model"]]["contract"])
    boxes = _input_boxes(record, entry["input"], contract)
    cropper = CropPreparer(contract)
    gt_info = probe_video(Path(facts["ground_truth"]["path"]))
    out_info = probe_video(run_dir / entry["folder"] / FRAMES_INNER)
    gt = np.empty((gt_info.height, gt_info.width, 3), np.uint8)
    out = np.empty((out_info.height, out_info.width, 3), np.uint8)
    picked = {}
    with FrameReader(gt_info) as gt_reader, FrameReader(out_info) as out_reader:
        for i in range(max(order) + 1):
            gt_reader.read_into(gt)
            out_reader.read_into(out)
            if i in wanted:
                reference = cropper.crop_frame(gt, boxes[ping_pong_index(i, facts["video_frames"])]).copy()
                picked[i] = plots.worst_frame_strip(reference, out.copy())
    return [{"frame": i, "psnr": _fmt(psnr[i], 2), "png": picked[i]} for i in order]


def write_html(run_dir: Path, record: dict, log=print) -> Path:
    ok = [e for e in record["runs"] if e.get("status") == "ok"]
    measured = [e for e in ok if e.get("fidelity")]
    videos = []
    for e in measured:
        facts = record["inputs"][e["input"]]
        out = run_dir / e["folder"] / SIDE_BY_SIDE
        side_by_side(Path(facts["ground_truth"]["path"]), run_dir / e["folder"] / OUTPUT_MP4, out, e["frames"])
        videos.append({"label": f"{e['model']} / {e['backend']} / {e['input']}", "href": f"{e['folder']}/{SIDE_BY_SIDE}",
                       "mp4": f"{e['folder']}/{OUTPUT_MP4}"})
    timed = [e for e in ok if e.get("timed_ms")]
    with_stats = [e for e in ok if e.get("output_stats")]
    noisy = [(e, number(e["summary"]["latency_cv"])) for e in ok
             if number(e["summary"]["latency_cv"]) is not None and number(e["summary"]["latency_cv"]) > HIGH_CV]
    env = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        record=record,
        columns=[(c, h) for c, h, _ in TABLE_COLUMNS],
        rows=summary_rows(record),
        regions=REGIONS,
        curves={r: plots.per_frame_curves(measured, r) for r in REGIONS} if measured else {},
        sync_png=plots.sync_curves(ok) if any(e.get("sync") for e in ok) else None,
        sync_lines=sync_sentences(ok),
        latency_png=plots.latency_distribution(timed) if timed else None,
        output_png=plots.output_histograms(with_stats) if with_stats else None,
        parity=[parity_row(r) for r in record.get("parity", [])],
        gates=sorted(record.get("gates", []), key=lambda g: g["passed"]),
        worst={f"{e['model']} / {e['backend']} / {e['input']}": worst_frames(run_dir, record, e) for e in measured},
        videos=videos,
        noisy=[{"label": f"{e['model']} / {e['backend']}", "cv": f"{cv:.2f}"} for e, cv in noisy],
        high_cv=HIGH_CV,
    )
    path = run_dir / REPORT_HTML
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html)
    os.replace(tmp, path)
    return path
