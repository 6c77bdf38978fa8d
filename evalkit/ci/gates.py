"""Gates: pass or fail per summary field, absolute or against a baseline run, and the CI outputs.

A gate result is truthy when it passed and carries the numbers that decided it.
All results are collected first; one summary is printed; then the exit code
says it (0 all passed, 1 a gate failed).

Quality metrics are deterministic for a given backend, so their gates are
exact comparisons. Speed is noisy, so a speed gate against a baseline
declares a regression only when the change is both larger than allowed and
statistically significant: the gated statistic itself (throughput_fps, or
the mean / median / p90 / p99 latency, computed from the raw samples) moved
in the slow direction by more than the allowed percentage AND a one-sided
Mann-Whitney U test (new latencies greater) on the two runs' raw latency
samples gives p < ``SPEED_ALPHA``. A faster run is never a drop. Its false-alarm rate on two
samples of one distribution is at most ``SPEED_ALPHA`` by construction, and
lower still with the percentage test on top (measured in tests/ci/test_gates.py).

Which clock: a speed gate on a CPU backend judges the CPU time of each timed
inference (``timed_cpu_ms``, pipeline/latency.py) when the run recorded it, the
wall clock elsewhere or when the gate says ``clock: wall``: on a shared machine
the wall clock measures the machine as much as the model. And a relative speed
gate that would fail while either run's own timing was noisy (coefficient of
variation of its samples above ``HIGH_CV``, or other processes using more than
``BUSY_SHARE`` of the machine while timing) says "inconclusive" instead: it
does not fail the run, and the verdict says so.
"""

from __future__ import annotations

import math
import operator
import time
import xml.etree.ElementTree as ET
import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from evalkit.metrics.latency import BUSY_SHARE, HIGH_CV, SAMPLED_STATISTICS, latency_summary
from evalkit.record.runkey import RunKey
from evalkit.record.summary import DEFAULT_PROTOCOL, SUMMARY_COLUMNS, number, run_key
from evalkit.record.vocabulary import canonical_field, unknown_fields  # noqa: F401 (unknown_fields: re-exported)

SPEED_ALPHA = 0.01  # the one-sided Mann-Whitney test's significance level: its false-alarm rate on equal speeds
LATENCY_FIELDS = {"latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"}
SAMPLED_SPEED_FIELDS = set(SAMPLED_STATISTICS)  # fields whose raw samples (timed_ms) a test can use
SPEED_FIELDS = SAMPLED_SPEED_FIELDS | {"throughput_end_to_end_fps", "throughput_batch4_fps", "cpu_throughput_fps",
                                       "cpu_latency_mean_ms", "cpu_latency_p50_ms", "cpu_latency_p99_ms"}
CPU_PROVIDER = "CPUExecutionProvider"


OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
             "!=": operator.ne}


@dataclass(frozen=True)
class GateResult:
    gate: str
    field: str
    model: str
    backend: str
    input: str
    value: float | None
    limit: str
    baseline_value: float | None
    passed: bool
    message: str
    protocol: str = DEFAULT_PROTOCOL
    inconclusive: bool = False  # a relative speed gate on noisy timing: not failed, not judged (passed is True)
    clock: str | None = None  # a speed gate's clock: "cpu" or "wall"
    seconds: float | None = None  # how long its evaluation took

    def __bool__(self) -> bool:
        return self.passed

    @property
    def key(self) -> RunKey:
        return RunKey(self.model, self.backend, self.input, self.protocol)

    @property
    def where(self) -> str:
        """model/backend/input, and /protocol when it is not the default reconstruction."""
        return self.key.where

    @property
    def outcome(self) -> str:
        """"pass", "FAIL" or "inconclusive": as the views write it."""
        return "inconclusive" if self.inconclusive else "pass" if self.passed else "FAIL"

    def to_dict(self) -> dict:
        return asdict(self)


def speed_regression(baseline_ms, candidate_ms, max_percent: float, field: str = "latency_p50_ms",
                     alpha: float = SPEED_ALPHA):
    """(regressed, ratio candidate/baseline of ``field``'s statistic, one-sided Mann-Whitney p) for latency samples.

    ``field`` is a key of ``SAMPLED_STATISTICS`` (throughput_fps, latency_p50_ms, ...). Regressed means both:
    the statistic moved in the slow direction (throughput down, latency up) by more than ``max_percent`` %,
    and the candidate's latencies are significantly greater (Mann-Whitney U, alternative "greater", p < alpha).
    A faster run can never regress; a non-finite statistic or p never passes.
    """
    key, higher_is_better, _ = SAMPLED_STATISTICS[canonical_field(field)]
    base, cand = np.asarray(baseline_ms, float), np.asarray(candidate_ms, float)
    b, c = latency_summary(base)[key], latency_summary(cand)[key]
    ratio = c / b if b else math.nan
    slower_percent = (1.0 - ratio if higher_is_better else ratio - 1.0) * 100.0
    p = float(scipy.stats.mannwhitneyu(cand, base, alternative="greater").pvalue)
    regressed = not (slower_percent <= max_percent or p >= alpha)  # written so that NaN regresses
    return regressed, ratio, p


FILTERS = (("models", "model"), ("backends", "backend"), ("inputs", "input"), ("protocols", "protocol"))

# Sync fields and the estimates (summary reliability columns) they rest on: a gate on one of them fails,
# with the estimator's reason, when an estimate it needs is not reliable. It never passes on a guess.
SYNC_RELIABILITY = {
    "sync_offset_frames": ("sync_reliable",), "sync_offset_ms": ("sync_reliable",),
    "sync_confidence": ("sync_reliable",), "gt_sync_offset_frames": ("gt_sync_reliable",),
    "sync_offset_vs_ground_truth_frames": ("sync_reliable", "gt_sync_reliable"),
    "video_lag_frames": ("video_lag_reliable",), "video_lag_confidence": ("video_lag_reliable",),
}


def _matches(gate, entry) -> bool:
    keys = entry.key
    return all(getattr(gate, attr, None) is None or keys[i] in getattr(gate, attr)
               for i, (attr, _) in enumerate(FILTERS))


def _unreliable(field: str, summary) -> str | None:
    """Why a sync field's value cannot be trusted (``summary``: a ``record.summary.Summary``), or None when it can."""
    for column in SYNC_RELIABILITY.get(field, ()):
        if summary.cell(column) != 1:
            if column == "video_lag_reliable":
                return "the video-to-video lag (output against ground truth) is not reliable"
            which = "the ground truth's own" if column.startswith("gt_") else "the output's"
            reason = summary.sync_reason if column == "sync_reliable" else None
            return f"{which} sync estimate is not reliable" + (f" ({reason})" if reason else "")
    return None


def _no_match(gate, label: str, record) -> GateResult:
    """A gate that matched no finished run is a failure that says why (a typo in a filter, skipped runs)."""
    filters = ", ".join(f"{attr}={getattr(gate, attr, None)}" for attr, _ in FILTERS
                        if getattr(gate, attr, None) is not None)
    skipped = [e for e in record.runs if e.status != "ok"]
    why = f"{len(skipped)} of {len(record.runs)} runs did not finish"
    if skipped:
        reasons = sorted({f"{e.backend}: {e.reason or e.status}" for e in skipped})
        why += f" ({'; '.join(reasons)})"
    return GateResult(label, gate.field, "*", "*", "*", None, "matches a run", None, False,
                      f"FAILED: the gate matched no finished run ({filters or 'no filters'}; {why})", "*")


def describe(gate) -> str:
    if gate.name:
        return gate.name
    field = f"abs({gate.field})" if gate.abs else gate.field
    if gate.op is not None:
        return f"{field} {gate.op} {gate.value:g}"
    for attr, word in (("max_drop", "drops by at most"), ("max_drop_percent", "drops by at most"),
                       ("max_rise", "rises by at most"), ("max_rise_percent", "rises by at most")):
        limit = getattr(gate, attr)
        if limit is not None:
            return f"{field} {word} {limit:g}{'%' if attr.endswith('percent') else ''} from the baseline"
    return field


def gate_clock(gate, entry) -> str:
    """The clock a speed gate judges on ``entry``: the gate's ``clock``, else CPU time on a CPU backend whose run
    recorded it, else the wall clock."""
    asked = getattr(gate, "clock", None)
    if asked is not None:
        return asked
    return "cpu" if entry.provider == CPU_PROVIDER and entry.timed_cpu_ms else "wall"


def _samples(entry, clock: str) -> list[float]:
    """A run's timed samples (ms) on ``clock`` (CPU: none in records made before CPU time was recorded)."""
    return list((entry.timed_cpu_ms if clock == "cpu" else entry.timed_ms) or [])


def timing_noise(entry, clock: str) -> str | None:
    """Why a run's own timing on ``clock`` is too noisy to judge a slowdown by, or None: its samples' coefficient
    of variation above HIGH_CV, or other processes using more than BUSY_SHARE of the machine while timing."""
    cv = latency_summary(_samples(entry, clock))["cv"]
    if cv == cv and cv > HIGH_CV:
        return f"{entry.key.where}'s {clock} timing varies by {cv:.2f} (CV above {HIGH_CV:g})"
    share = entry.timing_load.others_share if entry.timing_load else None
    if share is not None and share > BUSY_SHARE:
        return (f"other processes used {100 * share:.0f}% of the machine while {entry.key.where} was timed "
                f"(above {100 * BUSY_SHARE:.0f}%)")
    return None


def evaluate_gates(record, gates, baseline) -> list[GateResult]:
    """Every gate on every finished model x backend x input x protocol of ``record`` (a
    ``record.schema.RunRecord``, its summary rows made) it names; relative gates need ``baseline`` (another
    RunRecord; its runs matched by ``RunKey``)."""
    results = []
    base_entries = {e.key: e for e in (baseline.runs if baseline else []) if e.status == "ok"}
    for gate in gates:
        label = describe(gate)
        matched = 0
        for entry in record.runs:
            if entry.status != "ok" or not _matches(gate, entry):
                continue
            matched += 1
            t0 = time.perf_counter()
            result = _one_gate(gate, label, entry, base_entries.get(entry.key), record, baseline)
            results.append(dataclasses.replace(result, protocol=entry.protocol, seconds=time.perf_counter() - t0))
        if not matched:
            results.append(_no_match(gate, label, record))
    return results


def _one_gate(gate, label: str, entry, base_entry, record, baseline) -> GateResult:
    key = entry.key
    ids = (key.model, key.backend, key.input)
    field = canonical_field(gate.field)
    value = number(entry.summary.cell(field))
    clock = gate_clock(gate, entry) if field in SAMPLED_STATISTICS else None
    if clock == "cpu":  # the statistic of the CPU-time samples (throughput: inferences per CPU second)
        value = latency_summary(_samples(entry, "cpu"))[SAMPLED_STATISTICS[field][0]]
    shown = abs(value) if value is not None and gate.abs else value
    doubt = _unreliable(field, entry.summary)
    if doubt is not None:
        return GateResult(label, gate.field, *ids, value, "a reliable estimate", None, False,
                          f"FAILED: {gate.field} = {_fmt(value)}, but {doubt}")
    if gate.op is not None:
        ok = shown is not None and not math.isnan(shown) and OPERATORS[gate.op](shown, gate.value)
        msg = (f"{gate.field}{' (CPU time)' if clock == 'cpu' else ''} = {_fmt(value)}"
               + (f" (abs {_fmt(shown)})" if gate.abs else "") + f", needs {gate.op} {gate.value:g}")
        return GateResult(label, gate.field, *ids, value, f"{gate.op} {gate.value:g}", None, bool(ok),
                          ("passed: " if ok else "FAILED: ") + msg, clock=clock)
    return _relative(gate, label, entry, ids, shown, base_entry, record, baseline, clock)


def _relative(gate, label, entry, ids, value, base_entry, record, baseline, clock=None) -> GateResult:
    field = canonical_field(gate.field)
    if base_entry is None:
        return GateResult(label, gate.field, *ids, value, "vs baseline", None, False,
                          f"FAILED: the baseline has no finished {entry.key.where} to compare with")
    if clock == "cpu" and not base_entry.timed_cpu_ms:  # a baseline from before CPU time: the wall clock
        clock = "wall"
        value = number(entry.summary.cell(field))
        value = abs(value) if value is not None and gate.abs else value
    if clock == "cpu":
        base = latency_summary(_samples(base_entry, "cpu"))[SAMPLED_STATISTICS[field][0]]
    else:
        base = number(base_entry.summary.cell(field))
    if base is not None and gate.abs:
        base = abs(base)
    other = mp4_definition_change(field, base_entry, entry)
    if other is not None:
        return GateResult(label, gate.field, *ids, value, "vs baseline", base, False,
                          f"FAILED: {gate.field} of this run and of the baseline are not the same measure ({other}); "
                          "make a new baseline with this evalkit and suite (`evalkit baseline set RUN_DIR --force`)",
                          clock=clock)
    if value is None or base is None or math.isnan(value) or math.isnan(base):
        return GateResult(label, gate.field, *ids, value, "vs baseline", base, False,
                          f"FAILED: {gate.field} has no value (this run {_fmt(value)}, baseline {_fmt(base)})",
                          clock=clock)
    percent = gate.max_drop_percent if gate.max_drop_percent is not None else gate.max_rise_percent
    absolute = gate.max_drop if gate.max_drop is not None else gate.max_rise
    dropping = gate.max_drop is not None or gate.max_drop_percent is not None
    change = (base - value) if dropping else (value - base)  # positive: the bad direction
    limit = absolute if absolute is not None else abs(base) * percent / 100.0
    limit_text = f"{'drop' if dropping else 'rise'} <= {absolute:g}" if absolute is not None else \
        f"{'drop' if dropping else 'rise'} <= {percent:g}%"
    machine_note = ""
    if baseline and baseline.machine.get("cpu") != record.machine.get("cpu") and \
            field in SPEED_FIELDS:
        machine_note = " (warning: the baseline ran on another machine, speed is not comparable)"
    slow_direction = field in SAMPLED_STATISTICS and dropping == SAMPLED_STATISTICS[field][1] and not gate.abs
    inconclusive = False
    if slow_direction and percent is not None and _samples(entry, clock) and _samples(base_entry, clock):
        regressed, ratio, p = speed_regression(_samples(base_entry, clock), _samples(entry, clock), percent, field)
        ok = not regressed
        msg = (f"{field} ({SAMPLED_STATISTICS[field][2]}, {'CPU time' if clock == 'cpu' else 'wall clock'}) "
               f"{_fmt(value)} vs baseline {_fmt(base)}: "
               f"x{_fmt(ratio)}, {'drop' if dropping else 'rise'} of {_fmt(change)}, allowed {_fmt(limit)}; "
               f"Mann-Whitney p = {p:.2g} (a slowdown needs both beyond {percent:g}% and p < {SPEED_ALPHA:g})")
        noise = [why for why in (timing_noise(entry, clock), timing_noise(base_entry, clock)) if why]
        if regressed and noise:
            inconclusive, ok = True, True
            msg += f"; but the timing was noisy ({'; '.join(noise)}): repeat on a quiet machine to judge"
    else:
        ok = change <= limit + 1e-12
        msg = (f"{field} {_fmt(value)} vs baseline {_fmt(base)}: "
               f"{'drop' if dropping else 'rise'} of {_fmt(change)}, allowed {_fmt(limit)}")
    head = "INCONCLUSIVE: " if inconclusive else "passed: " if ok else "FAILED: "
    return GateResult(label, gate.field, *ids, value, limit_text, base, bool(ok), head + msg + machine_note,
                      inconclusive=inconclusive, clock=clock)


def _mp4_definition(field: str, entry) -> dict:
    """What an mp4 column's value depends on besides the frames: SSIM's viewing scale, and how output.mp4 was
    encoded (where evalkit encoded it)."""
    facts: dict = {}
    if entry.viewer is not None and "_ssim" in field:
        facts["SSIM scale"] = entry.viewer.ssim_scale
    if entry.mp4_encoding is not None:
        enc = entry.mp4_encoding
        facts.update({"x264 preset": enc.preset, "CRF": enc.crf,
                      "x264 threads": enc.threads if enc.threads is not None else "x264's default"})
    return facts


def mp4_definition_change(field: str, base_entry, entry) -> str | None:
    """How the baseline's value of an mp4 column (``mp4_face_*``, ``mp4_full_*``) was measured otherwise than
    this run's: "SSIM scale 1 in the baseline, 3 here" (record schema 6 changed both), or None. A relative gate
    across such a change compares two measures, and fails rather than pass by accident."""
    if not field.startswith("mp4_"):
        return None
    base, own = _mp4_definition(field, base_entry), _mp4_definition(field, entry)
    changed = [f"{k} {base[k]} in the baseline, {own[k]} here" for k in base if k in own and base[k] != own[k]]
    return "; ".join(changed) or None


def _fmt(v) -> str:
    """A value as shown to people: 6 significant digits; inf, -inf and nan as those words; None as 'none'."""
    if v is None:
        return "none"
    v = number(v)  # a value read back from run.json may be the string "inf"
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.6g}"


def needs_baseline(gates) -> bool:
    return any(g.op is None for g in gates)


RUN_CHECK = "ran, with finite fidelity and sync metrics"
RUN_CHECK_FIELDS = [c for c in SUMMARY_COLUMNS if c.endswith(("psnr_mean", "psnr_min", "ssim_mean", "ssim_min"))
                    and not c.startswith("parity_")] + ["sync_offset_frames", "sync_confidence",
                                                        "sync_offset_vs_ground_truth_frames", "lse_d", "lse_c"]


def run_checks(runs) -> list[GateResult]:
    """For a suite without gates: per model x backend x input of ``runs`` (a record's ``RunEntry``s) that was
    not skipped, a check that it ran (status ok) and that each fidelity and sync metric it has is a number (not
    NaN, not -inf; a PSNR of +inf means identical frames and is allowed)."""
    results = []
    for entry in runs:
        if entry.status == "skipped":
            continue
        ids = (entry.model, entry.backend, entry.input)
        protocol = entry.protocol
        if entry.status != "ok":
            results.append(GateResult(RUN_CHECK, "status", *ids, None, "status ok", None, False,
                                      f"FAILED: status {entry.status}: {entry.reason or 'no reason given'}",
                                      protocol))
            continue
        bad = []
        for field in RUN_CHECK_FIELDS:
            value = number(entry.summary.cell(field))
            if value is not None and not (math.isfinite(value) or (value > 0 and "psnr" in field)):
                bad.append(f"{field} = {_fmt(value)}")
        results.append(GateResult(RUN_CHECK, "status", *ids, None, "status ok, metrics finite", None, not bad,
                                  "FAILED: " + ", ".join(bad) if bad else "passed: status ok, metrics finite", protocol))
    return results


def summary_text(results: list[GateResult], gated: bool = True) -> str:
    """The gates' summary printed after a run: a count, then each failed and each inconclusive result with its
    numbers (the passed ones are counted, not listed: the verdict table shows every run).
    ``gated=False``: the results are run checks."""
    failed = [r for r in results if not r]
    unsure = [r for r in results if r.inconclusive]
    what = "gates" if gated else "no gates; run checks"
    lines = [f"{what}: {len(results) - len(failed)} of {len(results)} passed" + (f", {len(failed)} FAILED" if failed else "")
             + (f", {len(unsure)} inconclusive (counted as passed)" if unsure else "")]
    for r in failed + unsure:
        lines.append(f"  {r.outcome}  {r.where}  {r.gate}: {r.message}")
    return "\n".join(lines)


def _where(entry) -> str:
    """model/backend/input[/protocol] of a record entry, as ``GateResult.where`` writes it."""
    return RunKey.of(entry).where


def _seconds(value) -> str:
    value = number(value)
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "0.000"


def _duration(record) -> float:
    """Seconds the run took: its ``wall_seconds`` (to the millisecond), else from the record's start to its end
    (whole seconds; 0 when unknown)."""
    from datetime import datetime

    if record is None:
        return 0.0
    if record.wall_seconds is not None:
        return float(record.wall_seconds)
    try:
        return max(0.0, (datetime.fromisoformat(record.finished_utc)
                         - datetime.fromisoformat(record.created_utc)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def junit_xml(suite_name: str, results: list[GateResult], record=None) -> str:
    """JUnit XML: one test case per run (``run``: the seconds the run took to generate and measure, or its
    skip with the reason, or its failure), and one per gate per run (a gate's own time: its evaluation's);
    failures carry the numbers. A suite without gates has its run checks as the runs' cases. Totals (tests,
    failures, errors, skipped, time: the run's wall clock) are on ``<testsuite>`` and ``<testsuites>``;
    ``timestamp`` is the run's start (UTC). The cases' times add up to at most the run's time when its
    combinations ran one after another (parallel workers overlap them)."""
    entries = {_where(e): e for e in (record.runs if record is not None else [])}
    checked = {r.where for r in results if r.gate == RUN_CHECK}  # runs whose run check is their case
    runs = [e for w, e in entries.items() if e.status == "ok" and w not in checked]
    skipped = [e for e in entries.values() if e.status == "skipped"]
    totals = {"tests": str(len(results) + len(runs) + len(skipped)),
              "failures": str(sum(1 for r in results if not r)), "errors": "0", "skipped": str(len(skipped)),
              "time": f"{_duration(record):.3f}"}
    suites = ET.Element("testsuites", name=f"evalkit.{suite_name}", **totals)
    suite = ET.SubElement(suites, "testsuite", name=f"evalkit.{suite_name}", **totals)
    if record is not None and record.created_utc:
        suite.set("timestamp", str(record.created_utc)[:19])  # JUnit's timestamp has no time zone: it is UTC
    for e in runs:
        ET.SubElement(suite, "testcase", classname=f"{suite_name}.{_where(e).replace('/', '.')}", name="run",
                      time=_seconds(e.generate_seconds))
    for r in results:
        if r.gate == RUN_CHECK:  # the run's own case: the run's time
            seconds = entries[r.where].generate_seconds if r.where in entries else None
        else:
            seconds = r.seconds
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{r.where.replace('/', '.')}",
                             name=r.gate, time=_seconds(seconds))
        if not r:
            failure = ET.SubElement(case, "failure", message=r.message, type="GateFailed")
            failure.text = (f"field: {r.field}\nvalue: {_fmt(r.value)}\nlimit: {r.limit}\n"
                            f"baseline: {_fmt(r.baseline_value)}\n")
        elif r.inconclusive:
            ET.SubElement(case, "system-out").text = r.message
    for e in skipped:
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{_where(e).replace('/', '.')}", name="run",
                             time="0.000")
        ET.SubElement(case, "skipped", message=str(e.reason or "skipped"))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(suite_name: str, run_dir: str, results: list[GateResult], record=None,
                     gated: bool = True) -> str:
    """A short Markdown summary for a pull request or a CI job summary: the outcome, where the report is, the
    runs' verdicts with their key numbers, then the gates (failures first) and the skipped runs.

    ``gated=False``: the suite has no gates and ``results`` are run checks (``run_checks``); the summary says so.
    """
    from evalkit.report.verdicts import verdict_table_markdown

    failed = [r for r in results if not r]
    head = "FAILED" if failed else "passed"
    what = "gates" if gated else "run checks; the suite has no gates"
    entries = record.runs if record is not None else []
    runs = [e for e in entries if e.verdict]
    ok_runs = f"; {sum(1 for e in runs if e.verdict.ok)}/{len(runs)} runs ok" if runs else ""
    lines = [f"## evalkit `{suite_name}`: {head} ({len(results) - len(failed)}/{len(results)} {what}{ok_runs})", "",
             f"Report: `{run_dir}/report.html` (with `summary.csv` and `frames.csv` beside it; run folder `{run_dir}`)",
             ""]
    if entries:
        lines += ["### Verdict per run", "", verdict_table_markdown(record), ""]
    if not gated:
        lines += ["No gates: each run was checked only for having run (status ok) with finite fidelity and sync "
                  "metrics.", ""]
    lines += ["### Gates" if gated else "### Run checks", "",
              "| result | model / backend / input | gate | value | limit | baseline |", "|---|---|---|---|---|---|"]
    for r in failed + [r for r in results if r]:
        lines.append(f"| {'FAIL' if not r else 'inconclusive' if r.inconclusive else 'pass'} | "
                     f"{r.where.replace('/', ' / ')} | {_cell(r.gate)} | "
                     f"{_fmt(r.value)} | {_cell(r.limit)} | {_fmt(r.baseline_value)} |")
    skipped = [e for e in entries if e.status == "skipped"]
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- {_where(e).replace('/', ' / ')}: {_cell(e.reason)}"
                                         for e in skipped]
    return "\n".join(lines) + "\n"
