"""The verdict per run: computed once into the record, and what a person sees first on every page.

Known answers: the demo's fixture models are built to be judged so (tests/fixtures/test_models.py checks them):
``reference`` redraws the ground truth (ok), ``lag2`` moves the mouth two frames late (sync late), ``noisy`` adds
a +/-8 grey-level pattern (30 dB: fidelity low), ``copycat`` returns its input (near-copy).
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.record.summary import load_run
from evalkit.record.verdict import run_verdict
from evalkit.report.verdicts import WIDTH, verdict_table_text

EXPECTED = {"reference": "ok", "lag2": "sync late", "noisy": "fidelity low", "reference_fp16": "ok",
            "copycat": "near-copy"}


def verdicts(record) -> dict[str, dict]:
    return {e.model: e.verdict.model_dump() for e in record.runs}


def test_the_record_holds_each_fixture_models_verdict_with_its_numbers(demo_run):
    found = verdicts(load_run(demo_run))
    for model, words in EXPECTED.items():
        assert found[model]["text"] == words, (model, found[model])
    assert found["reference"]["ok"] and found["reference"]["findings"] == []
    lag2 = found["lag2"]["findings"][0]
    assert lag2["kind"] == "sync late" and "offset +2 frames" in lag2["detail"]
    assert "PSNR 30.0 dB < 35 dB" in found["noisy"]["findings"][0]["detail"]
    assert "mouth inf dB" in found["copycat"]["findings"][0]["detail"]  # an exact copy of its input
    assert found["mobile-unet"]["status"] == "flagged" and "fidelity low" in found["mobile-unet"]["text"]
    table = load_run(demo_run).runs[0].summary
    assert table.verdict == "ok"  # summary.csv's verdict column


class _Cells(HTMLParser):
    """Every table row of a page as (row's class, [(cell's class, cell's text)]) and the badges' texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.badges, self._row, self._cell, self._badge = [], [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row = (attrs.get("class", ""), [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [attrs.get("class", ""), ""]
        elif tag == "span" and "badge" in attrs.get("class", ""):
            self._badge = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row[1].append((self._cell[0], self._cell[1].strip()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "span" and self._badge is not None:
            self.badges.append(self._badge.strip())
            self._badge = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._badge is not None:
            self._badge += data


def test_the_report_leads_with_the_verdicts_badges_copycat_alone_and_never_colours_it_best(demo_run):
    html = (demo_run / "report.html").read_text()
    # the verdicts come first: before the summary tables and every chart
    assert html.index('id="verdicts"') < html.index('id="summary"') < html.index('id="fidelity"')
    # NEAR-COPY once, in copycat's own section (the template tested dict.copy, the built-in: every run had it)
    assert html.count("NEAR-COPY") == 1
    section = html[html.index('id="run-copycat__cpu__talking_head"'):]
    assert section.index("NEAR-COPY") < section.index("</summary>")
    page = _Cells()
    page.feed(html)
    copycat_rows = [cells for _, cells in page.rows if cells and cells[0][1].startswith("copycat")]
    assert len(copycat_rows) >= 4  # the verdict table and the three summary tables
    for cells in copycat_rows:
        assert all("best" not in cls for cls, _ in cells), cells  # never green
    verdict_rows = {cells[0][1].split(" / ")[0]: cells[1][1] for _, cells in page.rows
                    if len(cells) == 7 and " / cpu / " in cells[0][1]}
    for model, words in EXPECTED.items():
        assert verdict_rows[model] == words
    assert "near-copy" in page.badges and "sync late" in page.badges


def test_equal_values_are_never_one_best_and_one_worst():
    """Two runs whose values read the same (as rounded on the page) are not told apart; a near-copy is not best."""
    from evalkit.report.html import column_marks

    from tests.record.typed import typed_entry

    def entry(conf, psnr, copy=0):
        return typed_entry(summary={"sync_confidence": conf, "sync_reliable": 1, "psnr_mean": psnr,
                                    "copy_flag": copy})

    runs = [entry(12.04, 40.0), entry(12.01, 50.0), entry(9.0, "inf", copy=1)]
    assert column_marks(runs, "sync_confidence", 1) == {}  # the copy is left out; 12.0 and 12.0 read the same
    assert column_marks(runs, "sync_confidence", 2) == {0: "best", 1: "worst"}  # 12.04 and 12.01 do not
    assert column_marks(runs, "psnr_mean", 2) == {0: "worst", 1: "best"}  # the copy's inf is not its own
    timed = [typed_entry(summary={"throughput_fps": fps, "latency_cv": 0.05, "timing_others_share": share})
             for fps, share in ((100.0, 0.0), (50.0, 0.0), (20.0, 0.7))]
    assert column_marks(timed, "throughput_fps", 1) == {0: "best", 1: "worst"}  # the busy machine's 20 is left out


def test_the_terminal_closing_table_fits_100_columns_and_names_the_report(demo_run):
    record = load_run(demo_run)
    text = verdict_table_text(record, report=str(demo_run / "report.html"))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert lines[-1] == f"report: {demo_run / 'report.html'}"
    assert lines[0] == "verdicts: 2 of 6 runs ok"  # reference and reference_fp16
    rows = {line.split()[0]: line for line in lines[2:8]}
    assert rows["copycat/cpu/talking_head"].split()[1] == "near-copy"
    assert "55.99" in rows["reference/cpu/talking_head"] and "+2" in rows["lag2/cpu/talking_head"]
    assert any(line.startswith("lag2/cpu/talking_head: sync late (offset +2 frames") for line in lines)


def test_a_relative_speed_gate_judges_cpu_time_and_says_inconclusive_on_noisy_timing():
    """Hand-made samples: the wall clock doubled (a busy machine), the CPU time did not."""
    from evalkit.ci.gates import evaluate_gates
    from evalkit.config.suite import GateSpec

    rng = np.random.default_rng(0)
    steady = list(10.0 + rng.normal(0, 0.1, 200))

    from evalkit.record.schema import GateRecord
    from tests.record.typed import typed_record

    def run(wall, cpu, others=0.0):
        return typed_record(machine={"cpu": "x"}, runs=[{
            "model": "m", "backend": "cpu", "input": "clip", "protocol": "reconstruction", "status": "ok",
            "provider": "CPUExecutionProvider", "timed_ms": wall, "timed_cpu_ms": cpu,
            "timing_load": {"others_share": others, "loadavg_1m": 1.0, "cpus": 2},
            "summary": {"throughput_fps": 1000 * len(wall) / sum(wall)}}])

    base = run(steady, steady)
    busy = run([2 * v for v in steady], steady, others=0.5)
    gate = GateSpec(field="throughput_fps", max_drop_percent=10)
    (cpu,) = evaluate_gates(busy, [gate], base)
    assert cpu.passed and not cpu.inconclusive and cpu.clock == "cpu" and "CPU time" in cpu.message
    (wall,) = evaluate_gates(busy, [GateSpec(field="throughput_fps", max_drop_percent=10, clock="wall")], base)
    assert wall.clock == "wall" and wall.inconclusive and wall.passed  # slower x0.5, but the machine was busy
    assert wall.message.startswith("INCONCLUSIVE") and "50% of the machine" in wall.message
    quiet_but_slower = run([2 * v for v in steady], [2 * v for v in steady])
    (real,) = evaluate_gates(quiet_but_slower, [gate], base)
    assert not real.passed and not real.inconclusive  # a steady, quiet timing twice as slow: a regression
    verdict = run_verdict(busy.runs[0].model_copy(update={"summary": type(busy.runs[0].summary)()}),
                          [GateRecord(**wall.to_dict())])
    assert verdict["ok"] and verdict["text"] == "ok; speed inconclusive"


def test_compare_of_runs_whose_outputs_differ_in_size_exits_1_with_one_line(demo_run, tmp_path, capsys):
    """Another model (its outputs another size) against a run: exit 1, one line naming the run, not exit 3."""
    other = tmp_path / "other"
    shutil.copytree(demo_run, other, ignore=shutil.ignore_patterns("*.mp4", "side_by_side*"))
    npz = other / "reference__cpu__talking_head" / "head_outputs.npz"
    with np.load(npz) as data:
        outputs = data["outputs"]
    np.savez_compressed(npz, outputs=outputs[:, :, ::2, ::2])  # 160 x 160 per frame instead of 320 x 320
    capsys.readouterr()
    assert main(["compare", str(demo_run), str(other), "--out", str(tmp_path / "cmp")]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("evalkit:")]
    assert len(errors) == 1 and "reference/cpu/talking_head" in errors[0] and "[3, 160, 160]" in errors[0]
    assert "Traceback" not in captured.err and captured.out == ""
    html = (tmp_path / "cmp" / "comparison.html").read_text()
    assert "Not comparable: reference/cpu/talking_head" in html


def test_compare_leads_with_what_changed(demo_compared_with_itself):
    """A run against itself: quality identical, no speed change beyond noise, nothing unfolded; a poster frame
    on each video."""
    code, cmp, out, err = demo_compared_with_itself
    assert code == 0
    assert out.splitlines()[0] == "Quality: identical in all 6 runs compared."
    assert "pair 6 of 6 done: copycat/cpu/talking_head, quality identical" in err
    html = (cmp / "comparison.html").read_text()
    assert html.index("Quality: identical") < html.index('id="deltas"')
    assert "Nothing changed" in html and "Folded:" in html
    posters = re.findall(r'poster="([^"]+)"', html)
    assert len(posters) == 6 and all((cmp / p).stat().st_size > 1000 for p in posters)
