"""A verdict per run: one short judgement of each model x backend x input x protocol, computed once into the
record (``RunEntry.verdict``) and read by every view (report, terminal, summary.md, sign-off, compare).

A verdict is "ok", or what is wrong with the run, each finding a short word a person reads at a glance and
the numbers that decided it:

- ``skipped`` / ``failed``: the run did not run here, or failed (its reason);
- ``gate failed``: a gate of the suite failed on this run (the gate, the value, the limit);
- ``NaN/Inf``: the raw outputs hold NaN or infinite values (their counts);
- ``near-copy``: the output copies the reference channels it was given (copy PSNR against the flag's dB);
- ``sync unreliable``: the sync estimate cannot be acted on (the estimator's reason);
- ``sync late`` / ``sync early``: a reliable offset further than ``metrics.sync_tolerance_frames`` from the
  source's own offset (or from 0 without one);
- ``fidelity low``: mean PSNR against the ground truth below ``metrics.fidelity_low_psnr_db``;
- ``speed inconclusive``: a relative speed gate could not judge (the run's timing was noisy); the run's
  verdict is then still ok if nothing else is wrong, and says so.

It reads only the record (the entry's summary row, its status and the gate results), so an older record is
given its verdicts when it is read (``record.schema``'s migration to version 4).
"""

from __future__ import annotations

import math

from evalkit.record.runkey import RunKey

DEFAULT_FIDELITY_LOW_PSNR_DB = 35.0  # config.suite.MetricsSpec's defaults, for records made before them
DEFAULT_SYNC_TOLERANCE_FRAMES = 1
PROBLEMS = ("failed", "gate failed", "NaN/Inf", "near-copy", "sync unreliable", "sync late", "sync early",
            "fidelity low")
"""The findings that make a run's verdict not ok, most serious first (the order a verdict lists them in)."""


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value, digits: int = 1) -> str:
    v = _number(value)
    if v is None:
        return "none"
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.{digits}f}"


def _finding(kind: str, detail: str) -> dict:
    return {"kind": kind, "detail": detail}


def run_verdict(entry, gates, metrics: dict | None = None) -> dict:
    """The verdict of one record entry (a ``record.schema.RunEntry``, its summary row made): ``{"status", "ok",
    "findings": [{"kind", "detail"}], "text"}``, what ``record.schema.Verdict`` holds.

    ``status`` is "ok", "flagged" (it ran; something is wrong), "skipped" or "failed". ``gates``: the record's
    gate results (``GateRecord``s), ``metrics``: the suite definition's ``metrics`` (its verdict thresholds)."""
    metrics = metrics or {}
    min_psnr = float(metrics.get("fidelity_low_psnr_db", DEFAULT_FIDELITY_LOW_PSNR_DB))
    tolerance = int(metrics.get("sync_tolerance_frames", DEFAULT_SYNC_TOLERANCE_FRAMES))
    status = entry.status
    reason = " ".join(str(entry.reason or "").split())
    if status in ("skipped", "failed"):
        return _verdict(status, [_finding(status, reason or "no reason given")])
    s = entry.summary
    key = entry.key
    findings, notes = [], []
    for g in gates or []:
        if g.model == "*" or RunKey.of(g) != key:
            continue
        if g.inconclusive:
            notes.append(_finding("speed inconclusive", f"{g.gate}: {g.message.split(': ', 1)[-1]}"))
        elif not g.passed:
            findings.append(_finding("gate failed", f"{g.gate}: {g.field} = {_fmt(g.value, 4)}, limit {g.limit}"))
    nan, inf = s.nan_count or 0, s.inf_count or 0
    if nan or inf:
        findings.append(_finding("NaN/Inf", f"{int(nan)} NaN and {int(inf)} Inf output values"))
    if s.copy_flag == 1:
        flag_db = entry.copy_.psnr_db if entry.copy_ else None
        findings.append(_finding("near-copy", f"mouth {_fmt(s.copy_mouth_psnr)} dB from the reference "
                                              f"frame it was given" + (f", flagged at >= {flag_db:g} dB"
                                                                       if flag_db is not None else "")))
    offset = s.sync_offset_frames
    if s.sync_reliable == 0:
        findings.append(_finding("sync unreliable", s.sync_reason or "the estimate is not reliable"))
    elif s.sync_reliable == 1 and offset is not None:
        source = s.gt_sync_offset_frames if s.gt_sync_reliable == 1 else None
        delta = offset - (source or 0.0)
        if abs(delta) > tolerance:
            against = f"the source's {source:+.0f}" if source is not None else "0"
            findings.append(_finding("sync late" if delta > 0 else "sync early",
                                     f"offset {offset:+.0f} frames against {against}, tolerance +/-{tolerance}"))
    psnr = s.psnr_mean
    if psnr is not None and not math.isnan(psnr) and psnr < min_psnr:
        findings.append(_finding("fidelity low", f"PSNR {_fmt(psnr)} dB < {min_psnr:g} dB"))
    findings.sort(key=lambda f: PROBLEMS.index(f["kind"]))
    return _verdict("flagged" if findings else "ok", findings + notes)


def _verdict(status: str, findings: list[dict]) -> dict:
    words = [f["kind"] for f in findings]
    text = "; ".join(dict.fromkeys(words)) or "ok"  # each word once (two gates failed: "gate failed")
    if status == "ok" and findings:  # only notes (an inconclusive speed gate)
        text = "ok; " + text
    return {"status": status, "ok": status == "ok", "findings": findings, "text": text}


def add_verdicts(record) -> None:
    """Each entry of ``record`` (a ``record.schema.RunRecord``) given its ``verdict`` (after its summary row and
    the gates), and its summary row the verdict's words (summary.csv's ``verdict`` column)."""
    metrics = record.suite.definition.get("metrics") or {}
    for entry in record.runs:
        entry.verdict = run_verdict(entry, record.gates, metrics)
        entry.summary.verdict = entry.verdict.text


def verdict_detail(verdict, limit: int | None = None) -> str:
    """A verdict (``record.schema.Verdict``) in one line with its numbers: "near-copy (mouth inf dB ...); sync
    late (offset +2 ...)"."""
    if not verdict:
        return "-"
    if not verdict.findings:
        return "ok"
    text = "; ".join(f"{f.kind} ({f.detail})" for f in verdict.findings)
    if verdict.ok:
        text = "ok; " + text
    if limit is not None and len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text
