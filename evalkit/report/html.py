"""report.html: one self-contained page (plots embedded as PNG, no network) rendered from the run record."""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path

from evalkit.media.thumbnails import (DIFF_AMPLIFY, WORST_FRAMES, WORST_MIN_GAP_SECONDS,  # noqa: F401 (re-exported)
                                      distinct_worst)
from evalkit.metrics.latency import HIGH_CV
from evalkit.record.io import write_text_atomic
from evalkit.record.layout import OUTPUT_MP4, REPORT_HTML, SIDE_BY_SIDE, WORST_FRAMES_JSON  # noqa: F401 (re-exported)
from evalkit.record.runkey import RunKey
from evalkit.record.summary import HIGHER_IS_BETTER, number, run_label, sync_reliable
from evalkit.record.vocabulary import REGIONS
from evalkit.report import plots
from evalkit.report.templating import render

SMALL_MULTIPLES_AFTER = 6  # more series than this on one axis cannot be told apart: one panel per model instead

# The summary, as tables of at most ten value columns so that each fits a 1,400 px window without scrolling.
# (column, short header, decimals, what the header means: the legend under the table and the header's tooltip)
TABLE_GROUPS = [
    ("Fidelity against the ground truth", [
        ("psnr_mean", "PSNR", 2, "mean PSNR (dB) of the model's inner region"),
        ("psnr_min", "PSNR min", 2, "lowest frame PSNR (dB), inner region"),
        ("ssim_mean", "SSIM", 4, "mean SSIM, inner region"),
        ("ssim_min", "SSIM min", 4, "lowest frame SSIM, inner region"),
        ("mouth_psnr_mean", "mouth PSNR", 2, "mean PSNR (dB) of the contract's mouth box"),
        ("mouth_ssim_mean", "mouth SSIM", 4, "mean SSIM of the mouth box"),
        ("full_psnr_mean", "full PSNR", 2, "mean PSNR (dB) of the pasted-back full frame"),
        ("mp4_face_psnr_mean", "MP4 PSNR", 2, "mean PSNR (dB) of the face window decoded from output.mp4 (what a "
                                               "viewer sees of the face)"),
        ("mp4_face_ssim_mean", "MP4 SSIM", 4, "mean SSIM of the face window decoded from output.mp4, at the "
                                              "viewer's scale (run.json: viewer.ssim_scale)"),
        ("mp4_full_psnr_mean", "MP4 full PSNR", 2, "mean PSNR (dB) of the whole frame decoded from output.mp4 "
                                                   "(metrics.viewer_region: full)"),
        ("mp4_full_ssim_mean", "MP4 full SSIM", 4, "mean SSIM of the whole frame decoded from output.mp4, at the "
                                                   "viewer's scale"),
    ]),
    ("Sync and copy detection", [
        ("sync_offset_frames", "offset", 0, "sync offset (frames; + = mouth after sound); coloured by its distance "
                                            "from the source's own offset (or from 0), reliable estimates only"),
        ("sync_confidence", "conf.", 1, "sync confidence (units of chance); coloured among reliable estimates only"),
        ("sync_reliable", "reliable", 0, "1 when the sync estimate may be acted on (see the Sync section)"),
        ("gt_sync_offset_frames", "source offset", 0, "the ground truth's own sync offset (frames)"),
        ("video_lag_frames", "video lag", 0, "the output's mouth motion against the ground truth's, no audio (frames; "
                                             "+ = the output late)"),
        ("video_lag_reliable", "lag reliable", 0, "1 when the video lag may be acted on (see the Sync section)"),
        ("lse_d", "LSE-D", 3, "SyncNet distance (lower is better)"),
        ("lse_c", "LSE-C", 3, "SyncNet confidence (higher is better)"),
        ("copy_mouth_psnr", "copy PSNR", 2, "mouth PSNR (dB) against the unmasked reference channels the model "
                                            "was given (inf: an exact copy)"),
        ("copy_flag", "near-copy", 0, "1 when the output copies its input (see Copy detection)"),
    ]),
    ("The field's metrics", [
        ("lmd_mouth_mean", "LMD mouth", 2, "landmark distance of the mouth points 48-67 to the ground truth's, pixels of "
                                           "the full frame (lower is better; needs evalkit[face])"),
        ("lmd_all_mean", "LMD all", 2, "landmark distance over all 68 points, pixels of the full frame"),
        ("identity_template_max", "identity", 3, "largest identity descriptor distance of an output frame to its "
                                                "template frame (below 0.6: the same person)"),
        ("identity_gt_max", "identity GT", 3, "largest identity distance to the ground truth's frame"),
        ("lm_sync_offset_frames", "lm offset", 0, "sync offset of the landmarks' mouth opening (frames)"),
        ("lm_sync_agrees", "agrees", 0, "1 when the landmark and built-in sync estimates, both reliable, agree "
                                        "within a frame"),
        ("cpbd_mouth", "CPBD", 3, "no-reference sharpness of the output's mouth (higher is sharper)"),
        ("cpbd_mouth_template", "CPBD tmpl", 3, "the same of the template frames' mouths"),
        ("lpips_mean", "LPIPS", 4, "mean LPIPS against the ground truth (lower is better)"),
        ("fid", "FID", 2, "FID against the ground truth's frames (lower is better; see fid_samples)"),
        ("fvd", "FVD", 2, "FVD on 16-frame clips (lower is better; see fvd_clips)"),
    ]),
    ("Output values and speed", [
        ("out_mean", "out mean", 4, "mean raw model output, before x255 (a healthy model stays in [0, 1])"),
        ("out_std", "out std", 4, "standard deviation of the raw outputs"),
        ("out_min", "out min", 3, "lowest raw output"),
        ("out_max", "out max", 3, "highest raw output"),
        ("nan_count", "NaN", 0, "NaN output values"),
        ("inf_count", "Inf", 0, "infinite output values"),
        ("throughput_fps", "FPS", 1, "inference throughput: timed inferences / their total seconds"),
        ("throughput_end_to_end_fps", "e2e FPS", 1, "end-to-end throughput: frames / whole pipeline seconds"),
        ("latency_p50_ms", "p50 ms", 2, "median inference latency (ms)"),
        ("latency_p99_ms", "p99 ms", 2, "99th percentile inference latency (ms)"),
    ]),
]
TABLE_COLUMNS = [(col, header, decimals) for _, columns in TABLE_GROUPS for col, header, decimals, _ in columns]
INFERNO_STOPS = ["#000004", "#420a68", "#932667", "#dd513a", "#fca50a", "#fcffa4"]  # the heat map's colours, 0 to 1


def _fmt(value, decimals: int) -> str:
    v = number(value)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:,.{decimals}f}" if decimals else f"{int(v):+d}" if v < 0 else f"{int(v):,d}"


def _sync_distance(summary) -> float | None:
    """How far a reliable sync estimate is from where it should be: |offset - source's own offset| when the
    ground truth has a reliable offset, else |offset|; None for an unreliable or missing estimate (no direction)."""
    offset = summary.sync_offset_frames
    if offset is None or summary.sync_reliable != 1:
        return None
    source = summary.gt_sync_offset_frames
    if source is not None and summary.gt_sync_reliable == 1:
        return abs(offset - source)
    return abs(offset)


SPEED_COLUMNS_MARKED = {"throughput_fps", "throughput_end_to_end_fps", "throughput_batch4_fps", "latency_p50_ms",
                        "latency_p99_ms", "latency_mean_ms", "latency_p90_ms"}
COPY_COLUMNS_MARKED = {"copy_mouth_psnr", "copy_frames_fraction", "copy_flag"}


def _near_copy(entry) -> bool:
    return entry.summary.copy_flag == 1


def _noisy_timing(entry) -> bool:
    """High variation of the wall-clock latencies, or other processes busy while timing (metrics.latency.BUSY_SHARE)."""
    from evalkit.metrics.latency import BUSY_SHARE

    cv, share = entry.summary.latency_cv, entry.summary.timing_others_share
    return (cv is not None and cv == cv and cv > HIGH_CV) or (share is not None and share > BUSY_SHARE)


def trustworthy(entry, col: str) -> bool:
    """Whether a run's value in ``col`` may be coloured best or worst: a run that ran; a near-copy's only in the
    copy columns (its perfect reconstruction is its input's, not a result); a speed value only when its timing
    was not noisy; a sync value only when its estimate is reliable."""
    if entry.status != "ok":
        return False
    if _near_copy(entry) and col not in COPY_COLUMNS_MARKED:
        return False
    if col in SPEED_COLUMNS_MARKED and _noisy_timing(entry):
        return False
    if col in ("sync_offset_frames", "sync_confidence") and entry.summary.sync_reliable != 1:
        return False
    return True


def column_marks(entries: list, col: str, decimals: int | None = None) -> dict[int, str]:
    """"best"/"worst" per run index for one column, only where the column has a direction, among the runs whose
    value is trustworthy (``trustworthy``), and only where those values differ as shown (rounded to ``decimals``):
    two runs that read the same are never one best and one worst.

    The sync offset is ranked by its distance from the source's offset (lower is better); the sync confidence only
    among reliable estimates (an unreliable estimate's confidence says nothing about the model)."""
    if col == "sync_offset_frames":
        values = [(i, _sync_distance(e.summary)) for i, e in enumerate(entries)]
        higher = False
    elif col in HIGHER_IS_BETTER:
        values = [(i, e.summary.cell(col)) for i, e in enumerate(entries)]
        higher = HIGHER_IS_BETTER[col]
    else:
        return {}
    values = [(i, v) for i, v in values if trustworthy(entries[i], col) and v is not None and not math.isnan(v)]
    if decimals is not None:
        values = [(i, v if math.isinf(v) else round(v, decimals)) for i, v in values]
    if len(values) < 2 or min(v for _, v in values) == max(v for _, v in values):
        return {}
    best = (max if higher else min)(v for _, v in values)
    worst = (min if higher else max)(v for _, v in values)
    marks = {i: "best" if v == best else ("worst" if v == worst else "") for i, v in values}
    for i, mark in marks.items():  # a near-copy is never coloured best, whatever the column
        if mark == "best" and _near_copy(entries[i]):
            marks[i] = ""
    return marks


VERDICT_CLASS = {"ok": "best", "flagged": "worst", "failed": "worst", "skipped": ""}


def summary_tables(record) -> list[dict]:
    """The summary as TABLE_GROUPS tables: cells with best and worst marked, columns empty in every run left out."""
    entries = record.runs
    tables = []
    for title, columns in TABLE_GROUPS:
        shown = [c for c in columns if any(e.summary.cell(c[0]) is not None for e in entries)]
        marks = {col: column_marks(entries, col, d) for col, _, d, _ in shown}
        rows = []
        for i, e in enumerate(entries):
            s = e.summary
            rows.append({"model": e.model, "backend": e.backend, "input": e.input,
                         "protocol": e.protocol, "status": e.status, "reason": e.reason or "",
                         "frames": _fmt(s.frames, 0), "anchor": run_anchor(e),
                         "verdict": e.verdict.text if e.verdict else e.status,
                         "verdict_class": VERDICT_CLASS.get(e.verdict.status, "") if e.verdict else "",
                         "cells": [{"text": _fmt(s.cell(col), d), "mark": marks[col].get(i, "")}
                                   for col, _, d, _ in shown]})
        tables.append({"title": title, "columns": [{"col": c, "header": h, "legend": text} for c, h, _, text in shown],
                       "left_out": [h for c, h, _, _ in columns if (c, h) not in {(x[0], x[1]) for x in shown}],
                       "rows": rows})
    return tables


def summary_rows(record) -> list[dict]:
    """Every summary cell of TABLE_COLUMNS in one row per run (the tables of ``summary_tables``, side by side)."""
    rows = []
    for i, e in enumerate(record.runs):
        cells = [{"text": _fmt(e.summary.cell(col), d), "mark": column_marks(record.runs, col, d).get(i, "")}
                 for col, _, d in TABLE_COLUMNS]
        rows.append({"model": e.model, "backend": e.backend, "input": e.input, "protocol": e.protocol,
                     "status": e.status, "reason": e.reason or "", "frames": _fmt(e.summary.frames, 0),
                     "cells": cells})
    return rows


def run_anchor(entry) -> str:
    """The id of a run's section in the page (its folder name, which is unique in a record)."""
    return "run-" + (entry.folder or "-".join(entry.key))


def parity_row(result) -> dict:
    """A ``record.schema.ParityComparison`` as the page's parity table shows it (``tensor`` and ``picture`` are
    the statistics as written: dicts)."""
    tensor, picture = result.tensor or {}, result.picture
    return {"reference": result.reference, "candidate": result.candidate, "precision": result.precision,
            "passed": result.passed, "tol": f"atol {result.atol:g}, rtol {result.rtol:g}",
            "max_abs": _fmt(tensor.get("max_abs"), 7) if tensor else "-",
            "median_abs": _fmt(tensor.get("median_abs"), 7) if tensor else "-",
            "p99_abs": _fmt(tensor.get("p99_abs"), 7) if tensor else "-",
            "max_rel": _fmt(tensor.get("max_rel"), 5) if tensor else "-",
            "required": (f"atol {number(tensor['required_atol']):.2e} / rtol {number(tensor['required_rtol']):.2e}"
                         if tensor else "-"),
            "failing": (f"{tensor['failing_elements']:,d} of {tensor['elements']:,d}" if tensor
                        else result.tensor_note or "-"),
            "nan": tensor.get("nan_mismatches", "-") if tensor else "-",
            "psnr": _fmt(picture.get("psnr_mean"), 2), "psnr_min": _fmt(picture.get("psnr_min"), 2),
            "ssim_min": _fmt(picture.get("ssim_min"), 5)}


def sync_sentences(entries: list) -> list[str]:
    """One sentence per run: its offset, whether it is reliable, and how it compares with the source's own."""
    return [sync_sentence(e) for e in entries]


def sync_sentence(e) -> str:
    """A run's sync estimate in words: offset, reliability, and the source's own offset when both are reliable."""
    label = run_label(e)
    sync, gt = e.sync, e.ground_truth_sync
    if not sync or sync.no_signal:
        return f"{label}: no sync signal ({sync.reason if sync else 'not measured'})."
    reliable = sync_reliable(sync)
    text = (f"{label}: offset {sync.offset_frames:+d} frames ({sync.offset_ms:+.0f} ms), "
            f"confidence {sync.confidence:.1f}, "
            + ("reliable" if reliable else f"NOT RELIABLE ({sync.reason or 'unreliable'})"))
    if gt and not gt.no_signal and reliable and sync_reliable(gt):
        delta = sync.offset_frames - gt.offset_frames
        relation = "in step with" if delta == 0 else f"{abs(delta)} frame{'s' if abs(delta) != 1 else ''} " + (
            "later than" if delta > 0 else "earlier than")
        text += f"; the source itself is at {gt.offset_frames:+d}: the model is {relation} the source"
    lag = e.video_lag
    if lag and not lag.no_signal:
        text += (f"; its mouth against the ground truth's (no audio): {lag.offset_frames:+d} frames, confidence "
                 f"{lag.confidence:.1f}, " + ("reliable" if sync_reliable(lag) else "NOT RELIABLE"))
    if e.syncnet:
        sn = e.syncnet
        text += f"; SyncNet: LSE-D {sn.lse_d:.3f}, LSE-C {sn.lse_c:.3f}, offset {sn.offset_frames:+d}"
    return text + landmark_sync_clause(e) + "."


def landmark_sync_clause(e) -> str:
    """The second sync estimate, from the landmarks' mouth opening (evalkit[face]), and whether the two agree."""
    face = e.field.face if e.field else None
    lm = face.sync if face else None
    if not lm:
        return ""
    if lm.no_signal:
        return f"; landmarks: no signal ({lm.reason})"
    text = (f"; landmarks: offset {lm.offset_frames:+d}, confidence {lm.confidence:.1f}, "
            + ("reliable" if lm.reliable else "not reliable"))
    agrees = face.agrees_with_builtin
    return text + ("" if agrees is None else ", agreeing" if agrees else ", DISAGREEING with the estimate above")


def copy_sentences(entries: list) -> list[str]:
    """One line per run flagged as a near-copy of its input's reference channels."""
    lines = []
    for e in entries:
        s = e.summary
        if s.copy_flag == 1:
            lines.append(f"{run_label(e)}: a near-copy. Its mouth region is {_fmt(s.copy_mouth_psnr, 1)} dB from the "
                         f"unmasked reference channels it was given (flagged at {e.copy_.psnr_db:g} dB or more; "
                         f"{100 * s.copy_frames_fraction:.0f} % of frames): the output copies its input.")
    return lines


def wrap_sentences(record, entries: list) -> list[str]:
    """Runs whose raw outputs a plain uint8 cast (the reference script's) would have wrapped around."""
    lines = []
    for e in entries:
        wrap = e.output_stats.wrap_count if e.output_stats else None  # older records: no wrap_count
        if wrap:
            cast = record.models[e.model].contract.get("output_cast", "clip")  # before the option: clip
            lines.append(f"{run_label(e)}: {wrap:,d} output values lie at or beyond 256/255 or at or below -1/255; "
                         + ("they were wrapped modulo 256 (contract output_cast: wrap, as the reference script)."
                            if cast == "wrap" else "evalkit clipped them; the reference script's plain uint8 cast "
                            "would have wrapped them (256 -> 0), changing those pixels."))
    return lines


def worst_frames(run_dir: Path, record, entry) -> dict:
    """The worst frames saved in the run's folder when it was recorded (``measure.view_assets``: JPEG strips of
    ground truth | output | |difference| x DIFF_AMPLIFY, listed in worst_frames.json), or a note saying why
    there are none."""
    folder = Path(run_dir) / entry.folder
    path = folder / WORST_FRAMES_JSON
    if not path.is_file():
        return {"frames": [], "note": f"the run folder has none ({entry.folder}/{WORST_FRAMES_JSON} is absent: "
                                      "`evalkit report` makes them where the run's ground truth is on the machine)"}
    saved = json.loads(path.read_text())
    fps = record.inputs[entry.input].fps
    frames, absent = [], []
    for f in saved["frames"]:
        jpeg = folder / f["jpeg"]
        if not jpeg.is_file():
            absent.append(f["jpeg"])
            continue
        frames.append({"frame": f["frame"], "time": f"{f['frame'] / fps:.2f} s", "psnr": _fmt(f["psnr"], 2),
                       "jpeg": base64.b64encode(jpeg.read_bytes()).decode("ascii")})
    return {"frames": frames, "note": f"{', '.join(absent)} absent from the run folder" if absent else ""}


def _side_by_side_video(run_dir: Path, record, entry) -> str | None:
    """side_by_side.mp4 of a run with ground truth, made when the run was recorded; None when the folder lacks it."""
    if (Path(run_dir) / entry.folder / SIDE_BY_SIDE).is_file():
        return f"{entry.folder}/{SIDE_BY_SIDE}"
    return None


def _side_by_side_caption(video: Path, input_facts) -> str:
    """What the side-by-side video shows: the face (``media.frames.face_window``) or, where the crop boxes were
    not at hand when it was made, whole frames: told by its width against the input's."""
    from evalkit.errors import UserError
    from evalkit.media.ffmpeg import probe_video

    caption = "ground truth | output, side by side"
    try:
        whole = probe_video(video).width >= 2 * input_facts.size[0]
    except (UserError, OSError):  # unreadable here (ffmpeg cannot parse it): the browser may still play it
        return caption
    return caption + (", whole frames" if whole else ", around the face (every crop box and a margin)")


def run_section(run_dir: Path, record, entry, gates: list) -> dict:
    """Everything the page shows about one run, for its collapsible section: what it has, never an empty part."""
    s = entry.summary
    section = {"label": run_label(entry), "anchor": run_anchor(entry), "status": entry.status,
               "reason": entry.reason or "", "video": None, "video_caption": "", "output_mp4": None,
               "worst": None, "missing": [], "sync": "", "near_copy": s.copy_flag == 1,
               "verdict": entry.verdict or {"status": entry.status, "text": entry.status, "findings": []},
               "gates": [g for g in gates if RunKey.of(g) == entry.key],
               "facts": []}
    if entry.status != "ok":
        return section
    folder = run_dir / entry.folder
    if (folder / OUTPUT_MP4).is_file():
        section["output_mp4"] = f"{entry.folder}/{OUTPUT_MP4}"
    if entry.fidelity:
        section["video"] = _side_by_side_video(run_dir, record, entry)
        section["video_caption"] = _side_by_side_caption(folder / SIDE_BY_SIDE, record.inputs[entry.input])
        section["worst"] = worst_frames(run_dir, record, entry)
    else:
        section["video"] = section["output_mp4"]
        section["video_caption"] = "output (this run has no ground truth to show beside it)"
        section["missing"].append("no ground truth for this run's input and protocol, so no PSNR/SSIM, "
                                  "worst frames or side-by-side video")
    if section["video"] is None:
        section["missing"].append("no video in the run folder")

    section["sync"] = sync_sentence(entry)
    for col, label, d in [("psnr_mean", "PSNR mean (dB)", 2), ("ssim_mean", "SSIM mean", 4),
                          ("copy_mouth_psnr", "copy PSNR (dB)", 2), ("out_mean", "out mean", 4),
                          ("throughput_fps", "inference FPS", 1), ("latency_p50_ms", "median latency (ms)", 2),
                          ("lmd_mouth_mean", "LMD mouth (px)", 2), ("identity_template_max", "identity max", 3),
                          ("cpbd_mouth", "CPBD mouth", 3)]:
        if s.cell(col) is not None:
            section["facts"].append((label, _fmt(s.cell(col), d)))
    section["facts"].insert(0, ("frames", _fmt(entry.frames, 0)))
    face_missing = entry.field.face_missing if entry.field else None
    if face_missing:  # the one line saying how to get LMD and identity
        section["facts"].append(("LMD, identity", face_missing))
    return section


def file_fact(facts) -> str:
    """A file of the record (``record.schema.FileFacts``) by name and SHA-256: never the absolute path of the
    machine that ran it."""
    if not facts or isinstance(facts, str):  # a landmark folder's path alone (older records): no hash to show
        return "-"
    return f"{Path(facts.path).name} (SHA-256 {facts.sha256})"


def write_html(run_dir: Path, record, log=print) -> Path:
    """report.html of ``record`` (a ``record.schema.RunRecord``) into ``run_dir``."""
    entries = record.runs
    ok = [e for e in entries if e.status == "ok"]
    measured = [e for e in ok if e.fidelity]
    timed = [e for e in ok if e.timed_ms]
    with_stats = [e for e in ok if e.output_stats]
    noisy = [(e, e.summary.latency_cv) for e in ok
             if e.summary.latency_cv is not None and e.summary.latency_cv > HIGH_CV]
    gates = sorted(record.gates or [], key=lambda g: g.passed)
    sections = [run_section(run_dir, record, e, gates) for e in entries]
    from evalkit.metrics.latency import BUSY_SHARE as busy_share
    from evalkit.report.verdicts import LEGEND, verdict_rows

    html = render("report.html.j2",
        record=record,
        verdicts=verdict_rows(record), verdict_legend=LEGEND, verdict_class=VERDICT_CLASS,
        tables=summary_tables(record),
        regions={r: d for r, d in REGIONS.items() if any(r in e.fidelity for e in measured)},
        curves={r: plots.per_frame_curves([e for e in measured if r in e.fidelity], r, SMALL_MULTIPLES_AFTER)
                for r in REGIONS if any(r in e.fidelity for e in measured)},
        sync_png=plots.sync_curves(ok) if any(e.sync for e in ok) else None,
        sync_lines=sync_sentences(ok),
        copy_lines=copy_sentences(ok),
        wrap_lines=wrap_sentences(record, ok),
        latency_png=plots.latency_distribution(timed) if timed else None,
        output_png=plots.output_histograms(with_stats, SMALL_MULTIPLES_AFTER) if with_stats else None,
        parity=[parity_row(r) for r in record.parity],
        gates=gates,
        sections=sections,
        worst_count=WORST_FRAMES, worst_gap=WORST_MIN_GAP_SECONDS, amplify=DIFF_AMPLIFY,
        colour_stops=", ".join(INFERNO_STOPS), colour_max=round(255 / DIFF_AMPLIFY),
        files={"suite": Path(record.suite.path).name, "suite_sha256": record.suite.sha256,
               "models": {name: {"generator": file_fact(m.generator), "audio_encoder": file_fact(m.audio_encoder)}
                          for name, m in record.models.items()},
               "inputs": {name: {k: file_fact(getattr(i, k))
                                 for k in ("video", "audio", "ground_truth", "crop_boxes", "landmarks")}
                          for name, i in record.inputs.items()}},
        versions={name: Path(v).name if isinstance(v, str) and os.path.isabs(v) else v
                  for name, v in record.versions.items()},
        noisy=[{"label": run_label(e), "cv": f"{cv:.2f}"} for e, cv in noisy],
        busy=[{"label": run_label(e), "share": f"{100 * e.summary.timing_others_share:.0f}",
               "wall": _fmt(e.summary.latency_p50_ms, 3), "cpu": _fmt(e.summary.cpu_latency_p50_ms, 3)}
              for e in ok if _noisy_timing(e) and e.summary.timing_others_share is not None
              and e.summary.timing_others_share > busy_share],
        high_cv=HIGH_CV,
    )
    return write_text_atomic(run_dir / REPORT_HTML, html)
