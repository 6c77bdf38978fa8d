"""Gates: pass or fail per summary field, absolute or against a baseline run, and the CI outputs.

A gate result is truthy when it passed and carries the numbers that decided it.
All results are collected first; one summary is printed; then the exit code
says it (0 all passed, 1 a gate failed).

Quality metrics are deterministic for a given backend, so their gates are
exact comparisons. Speed is noisy, so a speed gate against a baseline
declares a regression only when the change is both larger than allowed and
statistically significant: the median latency ratio new/baseline exceeds
the allowed percentage AND a one-sided Mann-Whitney U test on the two runs'
raw latency samples gives p < ``SPEED_ALPHA``. Its false-alarm rate on two
samples of one distribution is at most ``SPEED_ALPHA`` by construction, and
lower still with the percentage test on top (measured in tests/test_gates.py).
"""

from __future__ import annotations

import math
import operator
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from evalkit.record import SUMMARY_COLUMNS, number

SPEED_ALPHA = 0.01
LATENCY_FIELDS = {"latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"}
SAMPLED_SPEED_FIELDS = LATENCY_FIELDS | {"fps"}  # fields whose raw samples (timed_ms) a test can use
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

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        return asdict(self)


def speed_regression(baseline_ms, candidate_ms, max_percent: float, alpha: float = SPEED_ALPHA):
    """(regressed, median ratio candidate/baseline, one-sided Mann-Whitney p) for latency samples."""
    base, cand = np.asarray(baseline_ms, float), np.asarray(candidate_ms, float)
    ratio = float(np.median(cand) / np.median(base))
    p = float(scipy.stats.mannwhitneyu(cand, base, alternative="greater").pvalue)
    return (ratio - 1.0) * 100.0 > max_percent and p < alpha, ratio, p


def _matches(gate, entry: dict) -> bool:
    return all(getattr(gate, attr) is None or entry[key] in getattr(gate, attr)
               for attr, key in (("models", "model"), ("backends", "backend"), ("inputs", "input")))


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


def evaluate_gates(record: dict, gates, baseline: dict | None) -> list[GateResult]:
    """Every gate on every finished model x backend x input it names; relative gates need ``baseline``."""
    results = []
    base_entries = {(e["model"], e["backend"], e["input"]): e for e in (baseline or {}).get("runs", [])
                    if e.get("status") == "ok"}
    for gate in gates:
        label = describe(gate)
        for entry in record["runs"]:
            if entry.get("status") != "ok" or not _matches(gate, entry):
                continue
            ids = (entry["model"], entry["backend"], entry["input"])
            value = number(entry["summary"].get(gate.field))
            shown = abs(value) if value is not None and gate.abs else value
            if gate.op is not None:
                ok = shown is not None and not math.isnan(shown) and OPERATORS[gate.op](shown, gate.value)
                msg = (f"{gate.field} = {_fmt(value)}" + (f" (abs {_fmt(shown)})" if gate.abs else "")
                       + f", needs {gate.op} {gate.value:g}")
                results.append(GateResult(label, gate.field, *ids, value, f"{gate.op} {gate.value:g}", None, bool(ok),
                                          ("passed: " if ok else "FAILED: ") + msg))
                continue
            results.append(_relative(gate, label, entry, ids, shown, base_entries.get(ids), record, baseline))
    return results


def _relative(gate, label, entry, ids, value, base_entry, record, baseline) -> GateResult:
    if base_entry is None:
        return GateResult(label, gate.field, *ids, value, "vs baseline", None, False,
                          f"FAILED: the baseline has no finished {'/'.join(ids)} to compare with")
    base = number(base_entry["summary"].get(gate.field))
    if base is not None and gate.abs:
        base = abs(base)
    if value is None or base is None or math.isnan(value) or math.isnan(base):
        return GateResult(label, gate.field, *ids, value, "vs baseline", base, False,
                          f"FAILED: {gate.field} has no value (this run {_fmt(value)}, baseline {_fmt(base)})")
    percent = gate.max_drop_percent if gate.max_drop_percent is not None else gate.max_rise_percent
    absolute = gate.max_drop if gate.max_drop is not None else gate.max_rise
    dropping = gate.max_drop is not None or gate.max_drop_percent is not None
    change = (base - value) if dropping else (value - base)  # positive: the bad direction
    limit = absolute if absolute is not None else abs(base) * percent / 100.0
    limit_text = f"{'drop' if dropping else 'rise'} <= {absolute:g}" if absolute is not None else \
        f"{'drop' if dropping else 'rise'} <= {percent:g}%"
    machine_note = ""
    if baseline and baseline.get("machine", {}).get("cpu") != record.get("machine", {}).get("cpu") and \
            gate.field in SAMPLED_SPEED_FIELDS | {"fps_end_to_end", "fps_batch4"}:
        machine_note = " (warning: the baseline ran on another machine, speed is not comparable)"
    if gate.field in SAMPLED_SPEED_FIELDS and percent is not None and entry.get("timed_ms") and base_entry.get("timed_ms"):
        # fps drops exactly when latency rises: test the latency samples in the bad direction.
        regressed, ratio, p = speed_regression([number(v) for v in base_entry["timed_ms"]],
                                               [number(v) for v in entry["timed_ms"]], percent)
        ok = not regressed
        msg = (f"{gate.field} {_fmt(value)} vs baseline {_fmt(base)}: median latency x{ratio:.3f}, "
               f"Mann-Whitney p = {p:.2g} (regression needs > {percent:g}% and p < {SPEED_ALPHA:g})")
    else:
        ok = change <= limit + 1e-12
        msg = (f"{gate.field} {_fmt(value)} vs baseline {_fmt(base)}: "
               f"{'drop' if dropping else 'rise'} of {_fmt(change)}, allowed {_fmt(limit)}")
    return GateResult(label, gate.field, *ids, value, limit_text, base, bool(ok),
                      ("passed: " if ok else "FAILED: ") + msg + machine_note)


def _fmt(v) -> str:
    if v is None:
        return "none"
    return f"{v:.6g}"


def needs_baseline(gates) -> bool:
    return any(g.op is None for g in gates)


def unknown_fields(gates) -> list[str]:
    return sorted({g.field for g in gates} - set(SUMMARY_COLUMNS))


def summary_text(results: list[GateResult]) -> str:
    """The one summary printed after a run: failures first."""
    failed = [r for r in results if not r]
    lines = [f"gates: {len(results) - len(failed)} of {len(results)} passed" + (f", {len(failed)} FAILED" if failed else "")]
    for r in failed + [r for r in results if r]:
        lines.append(f"  {'PASS' if r else 'FAIL'}  {r.model}/{r.backend}/{r.input}  {r.gate}: {r.message}")
    return "\n".join(lines)


def junit_xml(suite_name: str, results: list[GateResult]) -> str:
    """JUnit XML: one test case per gate per model x backend x input; failures carry the numbers."""
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name=f"evalkit.{suite_name}", tests=str(len(results)),
                          failures=str(sum(1 for r in results if not r)), errors="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{r.model}.{r.backend}.{r.input}",
                             name=r.gate)
        if not r:
            failure = ET.SubElement(case, "failure", message=r.message, type="GateFailed")
            failure.text = (f"field: {r.field}\nvalue: {_fmt(r.value)}\nlimit: {r.limit}\n"
                            f"baseline: {_fmt(r.baseline_value)}\n")
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def summary_markdown(suite_name: str, run_dir: str, results: list[GateResult]) -> str:
    """A short Markdown summary for a pull request or a CI job summary, failures first."""
    failed = [r for r in results if not r]
    head = "FAILED" if failed else "passed"
    lines = [f"## evalkit `{suite_name}`: {head} ({len(results) - len(failed)}/{len(results)} gates)", "",
             f"Run: `{run_dir}`", "", "| result | model / backend / input | gate | value | limit | baseline |",
             "|---|---|---|---|---|---|"]
    for r in failed + [r for r in results if r]:
        lines.append(f"| {'FAIL' if not r else 'pass'} | {r.model} / {r.backend} / {r.input} | {r.gate} | "
                     f"{_fmt(r.value)} | {r.limit} | {_fmt(r.baseline_value)} |")
    return "\n".join(lines) + "\n"
