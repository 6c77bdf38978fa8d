"""``evalkit compare RUN_A RUN_B``: what changed between two run folders, in one CSV and one HTML page.

Runs are matched by ``RunKey`` (model x backend x input x protocol). The page answers "what changed?" first:
a headline (is the quality identical; which runs got faster or slower, by how much, and whether that is beyond
noise; do the raw outputs agree), then each run's verdict in A and in B, then only the fields that changed
(unchanged ones folded, with their count), then parity and side-by-side videos (with a poster frame).

Per match: every numeric summary field of A and B with the difference (B - A) and, for speed fields, the ratio
B / A and, for the speed fields computed from the raw timed samples (throughput_fps and the latency statistics,
and their CPU-time twins), the p-value of a one-sided Mann-Whitney U test of the two runs' samples in the
direction the statistic moved: a speed change is "beyond noise" only when p < SPEED_ALPHA, the same test the
speed gates use; on a CPU backend whose runs both recorded CPU time, the headline judges CPU time (as the
gates do). Parity of B's raw outputs and pictures against A's (tolerances of B's precision; the one comparison
of two outputs, ``metrics.parity.compare_output_sets``: runs whose outputs differ in shape are not compared,
and ``evalkit compare`` then exits 1 with one line saying so). Numbers come from the two run.json files and the
runs' own output files. A baseline folder (``evalkit baseline set``: the record and tables, no videos) compares
by numbers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from evalkit.ci.baseline import is_baseline
from evalkit.ci.gates import CPU_PROVIDER, SPEED_ALPHA, SPEED_FIELDS
from evalkit.errors import UserError
from evalkit.measure.parity import head_outputs, picture_parity
from evalkit.metrics.latency import SAMPLED_STATISTICS
from evalkit.metrics.parity import DEFAULT_TOLERANCES, compare_output_sets
from evalkit.progress import Steps
from evalkit.record.io import atomic_output, write_bytes_atomic, write_text_atomic
from evalkit.record.layout import FRAMES_FULL, FRAMES_INNER, OUTPUT_MP4
from evalkit.record.runkey import RunKey
from evalkit.record.summary import (HIGHER_IS_BETTER, SPEED_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS, load_run, number,
                                    run_key)
from evalkit.media.side_by_side import side_by_side
from evalkit.report.templating import render

CPU_SAMPLED = {"cpu_throughput_fps": "throughput_fps", "cpu_latency_mean_ms": "latency_mean_ms",
               "cpu_latency_p50_ms": "latency_p50_ms", "cpu_latency_p99_ms": "latency_p99_ms"}
"""CPU-time speed fields and the wall-clock field whose statistic they are (of ``timed_cpu_ms``)."""
QUALITY_PREFIXES = ("psnr", "ssim", "mouth_", "full_", "mp4_", "copy_", "sync_", "gt_sync", "lse_", "out_",
                    "nan_count", "inf_count", "wrap_count", "mouth_sharpness", "syncnet")
TEXT_FIELDS = set(TEXT_COLUMNS)
CLOCK_WORDS = {"cpu": "CPU time per inference", "wall": "wall-clock time"}


def _is_quality(field: str) -> bool:
    return field.startswith(QUALITY_PREFIXES) and not field.startswith("parity_")


def speed_change_p(field: str, delta: float | None, samples_a, samples_b) -> float | None:
    """One-sided Mann-Whitney p that B's latencies moved the way ``field`` moved (None: no samples or no change).

    Slower (throughput down, latency up) tests B's latencies "greater" than A's; faster tests "less"."""
    field = CPU_SAMPLED.get(field, field)
    if field not in SAMPLED_STATISTICS or not samples_a or not samples_b or delta is None or not delta == delta \
            or delta == 0:
        return None
    slower = (delta < 0) if SAMPLED_STATISTICS[field][1] else (delta > 0)
    a, b = np.asarray(samples_a, float), np.asarray(samples_b, float)
    return float(scipy.stats.mannwhitneyu(b, a, alternative="greater" if slower else "less").pvalue)


@dataclass
class Comparison:
    """What ``compare_runs`` wrote and found: ``problems`` (one line each) make ``evalkit compare`` exit 1."""

    out: Path
    headline: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __fspath__(self) -> str:  # a Comparison stands for its folder, as compare_runs's Path did
        return str(self.out)


def _same(va, vb) -> bool:
    if va is None or vb is None:
        return va is vb
    return va == vb or (math.isnan(va) and math.isnan(vb))


def _speed_clock(ea, eb) -> str:
    both_cpu = all(e.provider == CPU_PROVIDER and e.timed_cpu_ms for e in (ea, eb))
    return "cpu" if both_cpu else "wall"


def _samples(entry, cpu: bool) -> list[float]:
    """A run's timed samples (ms): CPU time per inference (``timed_cpu_ms``) or wall clock (``timed_ms``)."""
    return list((entry.timed_cpu_ms if cpu else entry.timed_ms) or [])


def _speed_headline(key: RunKey, ea, eb) -> dict | None:
    """How the run's inference speed moved from A to B: ratio of throughput (CPU time on a CPU backend where
    both recorded it), the Mann-Whitney p, and whether it is beyond noise."""
    clock = _speed_clock(ea, eb)
    a, b = _samples(ea, clock == "cpu"), _samples(eb, clock == "cpu")
    if not a or not b:
        return None
    ratio = (len(b) / sum(b)) / (len(a) / sum(a)) if sum(a) > 0 and sum(b) > 0 else math.nan
    p = speed_change_p("throughput_fps", ratio - 1.0, a, b) if ratio == ratio and ratio != 1 else None
    beyond = p is not None and p < SPEED_ALPHA
    return {"key": key, "ratio": ratio, "p": p, "beyond": beyond, "clock": clock,
            "word": ("faster" if ratio > 1 else "slower") if beyond else "within noise"}


def compare_runs(run_a: Path, run_b: Path, out: Path, log=None) -> Comparison:
    """Compare two run folders into ``out`` (comparison.csv, comparison.html, A | B videos); progress lines go
    to ``log``. Returns the Comparison (its ``problems``: runs whose outputs cannot be compared)."""
    a, b = load_run(run_a), load_run(run_b)
    ok_a = {e.key: e for e in a.runs if e.status == "ok"}
    ok_b = {e.key: e for e in b.runs if e.status == "ok"}
    common = [k for k in ok_a if k in ok_b]
    if not common:
        raise UserError(f"{run_a} and {run_b} share no model x backend x input x protocol that ran in both")
    # the raw outputs read before anything is written: a damaged head_outputs.npz is told with nothing made
    heads = {key: (head_outputs(run_a, ok_a[key]), head_outputs(run_b, ok_b[key])) for key in common}
    out.mkdir(parents=True, exist_ok=True)
    result = Comparison(out)
    steps = Steps(len(common), "pair", log)
    steps.log(f"comparing {len(common)} runs found in both A and B (numbers, raw outputs, pictures, side-by-side "
              "videos) ...")
    rows, parity, videos, speeds, quality_changed = [], [], [], [], []
    for key in common:
        ea, eb = ok_a[key], ok_b[key]
        changed_quality = []
        for column in SUMMARY_COLUMNS:
            if column in TEXT_FIELDS:
                continue
            va, vb = number(ea.summary.cell(column)), number(eb.summary.cell(column))
            if va is None and vb is None:
                continue
            delta = vb - va if va is not None and vb is not None else None
            ratio = vb / va if column in SPEED_FIELDS and va and vb is not None else None
            cpu = column in CPU_SAMPLED
            p = speed_change_p(column, delta, _samples(ea, cpu), _samples(eb, cpu))
            same = _same(va, vb)
            if not same and _is_quality(column):
                changed_quality.append(column)
            rows.append({"model": key.model, "backend": key.backend, "input": key.input, "protocol": key.protocol,
                         "field": column, "a": va, "b": vb, "delta": delta, "ratio_b_over_a": ratio,
                         "mann_whitney_p": p, "changed": not same})
        if changed_quality:
            quality_changed.append((key, changed_quality))
        speed = _speed_headline(key, ea, eb)
        if speed is not None:
            speeds.append(speed)
        atol, rtol = DEFAULT_TOLERANCES[eb.precision]
        outputs = compare_output_sets(*heads.pop(key), atol, rtol)
        if outputs.shapes_differ:
            result.problems.append(f"{key.where}: the two runs' {outputs.note}: another model, not comparable "
                                   "output by output")
        external = "external" in (ea.kind, eb.kind)
        dir_a, dir_b = Path(run_a) / ea.folder, Path(run_b) / eb.folder
        frames_file = FRAMES_FULL if external else FRAMES_INNER
        # A baseline (evalkit baseline set) keeps the record and tables, no videos: its side is numbers only.
        picture = (picture_parity(dir_a, dir_b, frames_file) if _both_have(dir_a, dir_b, frames_file)
                   else {"missing": frames_file})
        if picture.get("error") and not outputs.shapes_differ:
            result.problems.append(f"{key.where}: the two runs' {picture['error']}: not comparable picture by picture")
        parity.append({"model": key.model, "backend": key.backend, "input": key.input, "protocol": key.protocol,
                       "atol": atol, "rtol": rtol, "tensor": outputs.tensor(), "note": outputs.note,
                       "picture": picture})
        if _both_have(dir_a, dir_b, OUTPUT_MP4) and not outputs.shapes_differ and not picture.get("error"):
            name = f"{'__'.join(key)}_a_vs_b.mp4"
            window = _face_window(a, ea)
            side_by_side(dir_a / OUTPUT_MP4, dir_b / OUTPUT_MP4, out / name, min(ea.frames, eb.frames),
                         window=window)
            videos.append({"label": " / ".join(key) + (", around the face" if window else ", whole frames"),
                           "href": name, "poster": _poster(out / name)})
        steps.step(f"{key.where}" + (f", quality changed ({', '.join(changed_quality[:3])})"
                                     if changed_quality else ", quality identical"))
    steps.phase("writing comparison.csv and comparison.html ...")
    table = pd.DataFrame(rows)
    with atomic_output(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    same_machine = a.machine.get("cpu") == b.machine.get("cpu") and a.machine.get("gpus") == b.machine.get("gpus")
    result.headline = _headline(common, quality_changed, speeds, parity, same_machine)
    changed = [r for r in rows if _shown(r)]
    unchanged: dict[RunKey, list[int]] = {}
    for r in rows:
        if not _shown(r):
            key = RunKey(r["model"], r["backend"], r["input"], r["protocol"])
            counts = unchanged.setdefault(key, [0, 0])
            counts[1 if r["changed"] else 0] += 1
    html = render("compare.html.j2",
        a=a, b=b, run_a=Path(run_a).resolve().name, run_b=Path(run_b).resolve().name, headline=result.headline,
        problems=result.problems, verdicts=_verdict_rows(common, ok_a, ok_b),
        rows=changed, unchanged=[{"label": k.label, "count": n, "noise": m} for k, (n, m) in unchanged.items()],
        parity=parity, videos=videos,
        same_machine=same_machine, baseline_a=is_baseline(run_a), baseline_b=is_baseline(run_b), higher=HIGHER_IS_BETTER,
        only_a=sorted(set(ok_a) - set(ok_b)), only_b=sorted(set(ok_b) - set(ok_a)), speed=SPEED_FIELDS,
        alpha=SPEED_ALPHA, fmt=lambda v, d=4: "-" if v is None else "nan" if v != v else f"{v:.{d}g}",
    )
    write_text_atomic(out / "comparison.html", html)
    return result


def _shown(row: dict) -> bool:
    """Whether a comparison row is shown unfolded: a value that changed, and for a timing, one whose change a
    test on raw samples finds beyond noise (the other timings of a run always move a little: folded)."""
    if not row["changed"]:
        return False
    if row["field"] in SPEED_COLUMNS:
        p = row["mann_whitney_p"]
        return p is not None and p == p and p < SPEED_ALPHA
    return True


def _headline(common, quality_changed, speeds, parity, same_machine) -> list[str]:
    """The page's first lines: quality identical or not, speed moved or not (beyond noise), outputs agree."""
    lines = []
    if not quality_changed:
        lines.append(f"Quality: identical in all {len(common)} runs compared.")
    else:
        parts = [f"{k.where} ({', '.join(cols[:4])}{', ...' if len(cols) > 4 else ''})" for k, cols in quality_changed]
        lines.append(f"Quality: changed in {len(quality_changed)} of {len(common)} runs: {'; '.join(parts)}.")
    moved = [s for s in speeds if s["beyond"]]
    if speeds:
        if moved:
            parts = [f"{s['key'].where} {s['word']} x{s['ratio']:.2f} ({CLOCK_WORDS[s['clock']]}, p = {s['p']:.1g})"
                     for s in moved]
            lines.append(f"Speed: {len(moved)} of {len(speeds)} runs changed beyond noise: {'; '.join(parts)}.")
        else:
            biggest = max(speeds, key=lambda s: abs(math.log(s["ratio"])) if s["ratio"] > 0 else 0)
            lines.append(f"Speed: no run changed beyond noise (Mann-Whitney p >= {SPEED_ALPHA:g}); the largest "
                         f"move, {biggest['key'].where}, x{biggest['ratio']:.2f} ({CLOCK_WORDS[biggest['clock']]}).")
        if not same_machine:
            lines.append("Speed warning: the two runs were made on different machines; their speed is not comparable.")
    failing = [p for p in parity if p["tensor"] is not None and not p["tensor"]["passed"]]
    compared = [p for p in parity if p["tensor"] is not None]
    if compared:
        lines.append(f"Raw outputs: {len(compared) - len(failing)} of {len(compared)} runs agree within "
                     "tolerance" + (f"; differ: {', '.join(RunKey(p['model'], p['backend'], p['input'], p['protocol']).where for p in failing)}"
                                    if failing else "") + ".")
    return lines


def _verdict_rows(common, ok_a, ok_b) -> list[dict]:
    rows = []
    for key in common:
        verdict_a, verdict_b = ok_a[key].verdict, ok_b[key].verdict
        va, vb = verdict_a.text if verdict_a else "-", verdict_b.text if verdict_b else "-"
        rows.append({"label": key.label, "a": va, "b": vb, "changed": va != vb,
                     "b_ok": verdict_b.ok if verdict_b else True})
    return rows


def _poster(video: Path) -> str | None:
    """The first frame of ``video`` as a JPEG beside it (the player's poster: no black box before it plays)."""
    import cv2

    from evalkit.media.decode import FrameReader
    from evalkit.media.ffmpeg import probe_video

    try:
        info = probe_video(video)
        frame = np.empty((info.height, info.width, 3), np.uint8)
        with FrameReader(info) as reader:
            reader.read_into(frame)
    except (OSError, UserError, ValueError, RuntimeError):
        return None
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        return None
    poster = video.with_suffix(".jpg")
    write_bytes_atomic(poster, jpeg.tobytes())
    return poster.name


def _face_window(record, entry) -> tuple[int, int, int, int] | None:
    """The part of the frames that run A's crop boxes show, with a margin (as the report's side-by-side video),
    or None (whole frames) when those boxes are not on this machine."""
    from evalkit.measure.view_assets import face_window_of, input_boxes

    try:
        return face_window_of(record, entry, input_boxes(record, entry))
    except (OSError, UserError):
        return None


def _both_have(dir_a: Path, dir_b: Path, name: str) -> bool:
    return (dir_a / name).is_file() and (dir_b / name).is_file()
