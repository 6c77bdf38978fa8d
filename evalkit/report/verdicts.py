"""The runs' verdicts (record.verdict) as a person reads them first: the terminal's closing table (fits 100
columns), summary.md's table, and the rows that lead the HTML report, the sign-off page and compare's page.

Each row: the run, its verdict, and the key numbers beside it (mean PSNR against the ground truth, the sync
offset, inference throughput on the wall clock and the CPU time per inference).
"""

from __future__ import annotations

import math
import textwrap

from evalkit.record.verdict import verdict_detail

WIDTH = 100  # the terminal table's width, in columns


def _number(value) -> float | None:
    try:
        v = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return None if v is None or math.isnan(v) else v


def _cell(value, decimals: int, signed: bool = False) -> str:
    v = _number(value)
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:+.{decimals}f}" if signed else f"{v:,.{decimals}f}"


def verdict_rows(record) -> list[dict]:
    """One row per run of ``record`` (a ``record.schema.RunRecord``), in its order: key, label, status, verdict
    words and detail, key numbers."""
    rows = []
    for e in record.runs:
        s, verdict = e.summary, e.verdict
        sync = _cell(s.sync_offset_frames, 0, signed=True)
        if sync != "-" and s.sync_reliable == 0:
            sync += "?"  # an unreliable estimate
        rows.append({
            "key": e.key, "label": e.key.label, "where": e.key.where,
            "status": verdict.status if verdict else e.status, "ok": verdict.ok if verdict else e.status == "ok",
            "verdict": verdict.text if verdict else e.status,
            "detail": verdict_detail(verdict) if verdict else "-",
            "findings": [f.model_dump() for f in verdict.findings] if verdict else [],
            "psnr": _cell(s.psnr_mean, 2), "ssim": _cell(s.ssim_mean, 4), "sync": sync,
            "fps": _cell(s.throughput_fps, 1), "cpu_ms": _cell(s.cpu_latency_p50_ms, 3),
            "copy": _cell(s.copy_mouth_psnr, 1), "anchor": "run-" + (e.folder or "-".join(e.key)),
        })
    return rows


HEADERS = ("run", "verdict", "PSNR dB", "sync", "FPS", "CPU ms")
LEGEND = ("PSNR dB: mean PSNR against the ground truth (inner region); sync: offset in frames (+ = mouth late; "
          "? = unreliable); FPS: inference throughput (wall clock); CPU ms: median CPU time per inference")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def verdict_table_text(record, report: str | None = None, width: int = WIDTH) -> str:
    """The terminal's closing table: how many runs are ok, a line per run (its verdict and key numbers), then what each flagged run's
    verdict rests on, then where the report is; no line is longer than ``width``."""
    rows = verdict_rows(record)
    numbers = (7, 5, 8, 7)  # PSNR, sync, FPS, CPU ms
    verdict_w = min(30, max([len(HEADERS[1])] + [len(r["verdict"]) for r in rows]))
    label_w = max(12, min(max([3] + [len(r["where"]) for r in rows]),
                          width - verdict_w - sum(numbers) - 2 * (len(numbers) + 1)))

    def line(cells):
        run, verdict, *nums = cells
        return "  ".join([f"{_fit(run, label_w):<{label_w}}", f"{_fit(verdict, verdict_w):<{verdict_w}}"]
                         + [f"{n:>{w}}" for n, w in zip(nums, numbers)]).rstrip()

    lines = [f"verdicts: {sum(1 for r in rows if r['ok'])} of {len(rows)} runs ok", line(HEADERS)]
    lines += [line((r["where"], r["verdict"], r["psnr"], r["sync"], r["fps"], r["cpu_ms"])) for r in rows]
    flagged = [r for r in rows if r["findings"]]
    if flagged:
        lines.append("")
        for r in flagged:
            lines += textwrap.wrap(f"{r['where']}: {r['detail']}", width, subsequent_indent="    ")
    lines += textwrap.wrap(LEGEND, width)
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table_markdown(record) -> str:
    """summary.md's verdict table: a row per run with its verdict (and what it rests on) and key numbers."""
    lines = ["| run | verdict | PSNR (dB) | sync offset | FPS | CPU ms / inference |", "|---|---|---|---|---|---|"]
    for r in verdict_rows(record):
        if r["findings"]:
            verdict = "; ".join(f"**{_md(f['kind'])}**: {_md(f['detail'])}" for f in r["findings"])
        else:
            verdict = _md(r["verdict"])
        lines.append(f"| {_md(r['label'])} | {verdict} | {r['psnr']} | {r['sync']} | {r['fps']} | {r['cpu_ms']} |")
    return "\n".join(lines)
