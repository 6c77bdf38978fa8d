"""Records and CI outputs on hand-made cases: safe baselines, non-finite values in every view, damaged
records as user errors, one speed vocabulary, gate-less suites, and `run --json`."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.errors import UserError
from evalkit.ci.gates import GateResult, evaluate_gates, junit_xml, speed_regression, summary_markdown, summary_text
from evalkit.measure.golden import MANIFEST, load_golden
from evalkit.metrics.latency import latency_summary
from evalkit.record.summary import RUN_RECORD, load_run
from tests.record.typed import typed_record
from evalkit.config.suite import GateSpec


def tree(folder) -> dict:
    """Every file under ``folder`` with its bytes: to show that nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("evalkit: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


# --- 1. baselines never delete or replace anything else ---------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "../x", "a\\b"])
def test_baseline_names_that_are_paths_are_refused(demo_run, tmp_path, monkeypatch, capsys, name):
    work = tmp_path / "work"
    (work / "baselines" / "team").mkdir(parents=True)
    (work / "baselines" / "team" / "run.json").write_text("{}")
    (work / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    assert main(["baseline", "set", str(demo_run), "--name", name]) == 2
    one_error_line(capsys, "--name", "not a baseline name")
    assert tree(tmp_path) == before


def test_an_ordinary_folder_is_never_replaced_even_with_force(demo_run, tmp_path, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.yaml").write_text("name: mine\n")
    before = tree(tmp_path)
    for extra in ([], ["--force"]):
        assert main(["baseline", "set", str(demo_run), "--dir", str(tmp_path), "--name", "suites", *extra]) == 2
        one_error_line(capsys, str(tmp_path / "suites"), "not an evalkit baseline")
    assert tree(tmp_path) == before


def test_force_replaces_only_a_baseline(demo_run, tmp_path, capsys):
    base = tmp_path / "baselines"
    assert main(["baseline", "set", str(demo_run), "--dir", str(base), "--name", "team"]) == 0
    (base / "team" / "stale.txt").write_text("from the old baseline")
    before = tree(tmp_path)
    assert main(["baseline", "set", str(demo_run), "--dir", str(base), "--name", "team"]) == 2
    one_error_line(capsys, "--force")
    assert tree(tmp_path) == before
    assert main(["baseline", "set", str(demo_run), "--dir", str(base), "--name", "team", "--force"]) == 0
    assert (base / "team" / "BASELINE").is_file() and not (base / "team" / "stale.txt").exists()
    assert load_run(base / "team").run_id == load_run(demo_run).run_id
    assert sorted(p.name for p in base.iterdir()) == ["team"]  # no temporary folder left behind


# --- 2. every real value renders -------------------------------------------------------------------------

def _result(value, passed, **kw):
    return GateResult(kw.get("gate", "psnr_mean >= 30"), "psnr_mean", kw.get("model", "m"), "cpu", "clip", value,
                      ">= 30", kw.get("baseline"), passed, f"{'passed' if passed else 'FAILED'}: psnr_mean")


NON_FINITE = [_result(float("inf"), True, model="a"), _result(float("-inf"), False, model="b"),
              _result(float("nan"), False, model="c", baseline=float("nan")),
              _result("inf", True, model="d", baseline="-inf"), _result("nan", False, model="e")]
RECORD = typed_record(created_utc="2024-05-01T10:00:00+00:00", finished_utc="2024-05-01T10:01:30+00:00", runs=[
    {"model": "a", "backend": "cpu", "input": "clip", "status": "ok", "generate_seconds": 12.5},
    {"model": "m", "backend": "cuda", "input": "clip", "status": "skipped", "reason": "not available here"},
])


def test_non_finite_values_render_as_words_in_text_junit_and_markdown():
    text = summary_text(NON_FINITE)
    assert "gates: 2 of 5 passed, 3 FAILED" in text
    md = summary_markdown("s", "run", NON_FINITE, RECORD)
    rows = {line.split("|")[2].strip().split(" / ")[0]: [c.strip() for c in line.split("|")]
            for line in md.splitlines() if line.startswith(("| pass", "| FAIL"))}
    assert rows["a"][4] == "inf" and rows["b"][4] == "-inf" and rows["c"][4] == "nan" and rows["c"][6] == "nan"
    assert rows["d"][4] == "inf" and rows["d"][6] == "-inf" and rows["e"][4] == "nan"
    assert "m / cuda / clip: not available here" in md
    root = ET.fromstring(junit_xml("s", NON_FINITE, RECORD))
    failures = {c.get("classname"): c.find("failure") for c in root.iter("testcase") if c.find("failure") is not None}
    assert "value: -inf" in failures["s.b.cpu.clip"].text and "value: nan" in failures["s.c.cpu.clip"].text
    assert "baseline: nan" in failures["s.c.cpu.clip"].text


def test_junit_has_totals_times_timestamp_and_skipped_runs():
    root = ET.fromstring(junit_xml("s", NON_FINITE, RECORD))
    suite = root.find("testsuite")
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors"), element.get("skipped")) == (
            "7", "3", "0", "1")  # 5 gate results, the run case of a, the skipped m
        assert float(element.get("time")) == 90.0
    assert suite.get("timestamp") == "2024-05-01T10:00:00"
    cases = suite.findall("testcase")
    assert float(cases[0].get("time")) == 12.5  # model a's run took 12.5 s
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(skipped) == 1 and skipped[0].get("classname") == "s.m.cuda.clip"
    assert skipped[0].find("skipped").get("message") == "not available here"


def test_a_nan_never_passes_a_gate():
    record = typed_record(machine={"cpu": "x"}, runs=[
        {"model": "m", "backend": "cpu", "input": "clip", "status": "ok", "summary": {"psnr_mean": "nan"}}])
    gates = [GateSpec(field="psnr_mean", op=op, value=30) for op in (">=", "<=", "!=")]
    results = evaluate_gates(record, gates, None)
    assert len(results) == 3 and not any(results)
    relative = evaluate_gates(record, [GateSpec(field="psnr_mean", max_drop=1.0)], record)
    assert len(relative) == 1 and not relative[0]


# --- gate-less suites, and run --json ---------------------------------------------------------------------

@pytest.fixture
def fake_run(demo_run, tmp_path, monkeypatch):
    """`evalkit run` without generating: run_suite returns a copy of the demo run (its record editable), after
    writing the CI files asked for, as a run does before its folder takes its final name."""
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy, ignore=shutil.ignore_patterns("*.mp4", "*.mkv", "frames*"))
    import evalkit.run

    def run_suite(*args, finishing=None, **kwargs):
        evalkit.run.write_ci_files(load_run(copy), copy, {k: v for k, v in (finishing or {}).items() if v})
        return copy

    monkeypatch.setattr(evalkit.run, "run_suite", run_suite)
    return copy


def test_a_suite_without_gates_still_writes_junit_and_markdown(demo_suite, fake_run, tmp_path, capsys):
    junit, md = tmp_path / "ci" / "junit.xml", tmp_path / "ci" / "summary.md"
    assert main(["run", str(demo_suite), "--junit", str(junit), "--summary-md", str(md)]) == 0
    runs = load_run(fake_run).runs
    root = ET.parse(junit).getroot()
    assert root.get("tests") == str(len(runs)) and root.get("failures") == "0"
    assert "no gates" in md.read_text()
    assert "no gates; run checks: 6 of 6 passed" in capsys.readouterr().out


def test_run_checks_fail_a_run_with_nan_metrics_and_json_says_so(demo_suite, fake_run, tmp_path, capsys):
    record = json.loads((fake_run / RUN_RECORD).read_text())
    record["runs"][1]["summary"]["ssim_mean"] = "nan"
    record["runs"][2]["summary"]["psnr_mean"] = "inf"  # identical frames: a real value, and fine
    (fake_run / RUN_RECORD).write_text(json.dumps(record))
    junit = tmp_path / "junit.xml"
    assert main(["run", str(demo_suite), "--json", "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    result = json.loads(out)  # one JSON object, nothing else on stdout
    assert result["run_dir"] == str(fake_run) and result["gated"] is False and result["exit_code"] == 1
    failed = [c for c in result["run_checks"] if not c["passed"]]
    assert len(failed) == 1 and failed[0]["model"] == record["runs"][1]["model"]
    assert "ssim_mean = nan" in failed[0]["message"]
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_run_json_keeps_gate_values_non_finite_as_strings(demo_suite, fake_run, capsys):
    record = json.loads((fake_run / RUN_RECORD).read_text())
    record["gates"] = [_result("inf", True).to_dict(), _result("nan", False, model="x").to_dict()]
    (fake_run / RUN_RECORD).write_text(json.dumps(record))
    assert main(["run", str(demo_suite), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [g["value"] for g in result["gates"]] == ["inf", "nan"] and result["passed"] is False


# --- 3. damaged records are user errors ---------------------------------------------------------------------

def _damaged(demo_run, tmp_path, how: str):
    folder = tmp_path / how
    folder.mkdir()
    text = (demo_run / RUN_RECORD).read_text()
    record = json.loads(text)
    if how == "cut":
        text = text[: len(text) // 2]
    elif how == "list":
        text = json.dumps(record["runs"])
    elif how == "no-runs":
        text = json.dumps({k: v for k, v in record.items() if k != "runs"})
    elif how == "future":
        text = json.dumps(dict(record, schema_version=99))
    elif how == "entry":
        record["runs"][0].pop("summary")
        text = json.dumps(record)
    (folder / RUN_RECORD).write_text(text)
    return folder


@pytest.mark.parametrize("how,needle", [("cut", "expected the JSON object"), ("list", "expected a JSON object"),
                                        ("no-runs", "missing key 'runs'"), ("future", "schema_version 99"),
                                        ("entry", "runs[0]")])
def test_report_compare_and_baseline_on_a_damaged_record_exit_2(demo_run, tmp_path, capsys, how, needle):
    bad = _damaged(demo_run, tmp_path, how)
    path = str(bad / RUN_RECORD)
    assert main(["report", str(bad)]) == 2
    one_error_line(capsys, path, needle)
    assert main(["compare", str(demo_run), str(bad), "--out", str(tmp_path / "cmp")]) == 2
    one_error_line(capsys, path, needle)
    assert main(["baseline", "set", str(bad), "--dir", str(tmp_path / "b"), "--name", "x"]) == 2
    one_error_line(capsys, path, needle)
    assert not (tmp_path / "b" / "x").exists()


def test_old_speed_names_in_a_record_read_as_today(demo_run, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    record = json.loads((demo_run / RUN_RECORD).read_text())
    for entry in record["runs"]:
        entry["summary"]["fps"] = entry["summary"].pop("throughput_fps")
    (folder / RUN_RECORD).write_text(json.dumps(record))
    loaded = load_run(folder)
    assert all(e.summary.throughput_fps is not None for e in loaded.runs if e.status == "ok")
    assert all("fps" not in e["summary"] and "throughput_fps" in e["summary"] for e in loaded.to_json_dict()["runs"])


def test_signoff_verify_on_a_json_list_and_history_on_a_text_file_exit_2(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    record = tmp_path / "signoff.json"
    record.write_text("[1, 2]")
    assert main(["signoff", "verify", str(record), "--model", str(model)]) == 2
    one_error_line(capsys, str(record), "JSON object")
    db = tmp_path / "history.sqlite"
    db.write_text("this is not a database, " * 100)
    assert main(["history", "--db", str(db)]) == 2
    one_error_line(capsys, str(db), "not an evalkit history database")


@pytest.mark.parametrize("text", ['{"schema": "evalkit.golden.v1", "entr', "[]",
                                  '{"schema": "evalkit.golden.v1", "entries": {"m__i": {"file": "../x.npz"}}}'])
def test_a_corrupt_golden_manifest_is_a_user_error(tmp_path, text):
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(UserError) as err:
        load_golden(tmp_path, "m", "i")
    assert str(tmp_path / MANIFEST) in str(err.value) and "\n" not in str(err.value)


# --- 4. one speed vocabulary ---------------------------------------------------------------------------------

RNG = np.random.default_rng(11)
BASE = RNG.normal(20.0, 0.6, 200)  # ms, 3 % noise


def test_throughput_is_timed_count_over_timed_seconds_and_one_outlier_moves_it_not_the_median():
    s = latency_summary([10.0, 10.0, 10.0, 970.0])
    assert s["throughput_fps"] == pytest.approx(4 / 1.0) and s["p50"] == 10.0


@pytest.mark.parametrize("field", ["throughput_fps", "latency_p50_ms", "latency_mean_ms", "latency_p99_ms"])
def test_a_faster_run_is_never_a_drop(field):
    faster = RNG.normal(12.0, 0.4, 200)
    for allowed in (0.0, 10.0):
        regressed, ratio, p = speed_regression(BASE, faster, allowed, field)
        assert not regressed and p > 0.5
    assert speed_regression(BASE, BASE * 1.3, 10.0, field)[0]  # and 30 % slower is one


def test_an_outlier_does_not_flip_throughput_against_the_median():
    """A candidate faster in the median with one 5 s stall: its throughput falls, yet it is no slowdown."""
    faster_with_stall = np.append(RNG.normal(18.0, 0.5, 199), 5000.0)
    lat = latency_summary(faster_with_stall)
    assert lat["throughput_fps"] < 0.9 * latency_summary(BASE)["throughput_fps"]  # the gated statistic did drop
    regressed, ratio, p = speed_regression(BASE, faster_with_stall, 10.0, "throughput_fps")
    assert ratio < 0.9 and p > 0.5 and not regressed
    assert not speed_regression(BASE, faster_with_stall, 10.0, "latency_p50_ms")[0]


def _speed_record(samples, cpu="same"):
    summary = {f: v for f, v in zip(("throughput_fps", "latency_p50_ms"),
                                    (latency_summary(samples)["throughput_fps"], latency_summary(samples)["p50"]))}
    return typed_record(machine={"cpu": cpu}, runs=[{"model": "m", "backend": "cpu", "input": "clip", "status": "ok",
                                                     "summary": summary, "timed_ms": list(samples)}])


@pytest.mark.parametrize("field", ["throughput_fps", "fps"])
def test_relative_speed_gate_names_its_statistic_and_passes_a_faster_run(field):
    base, faster = _speed_record(BASE), _speed_record(BASE * 0.6)
    [result] = evaluate_gates(faster, [GateSpec(field=field, max_drop_percent=10)], base)
    assert result and "throughput = timed frames / total timed seconds" in result.message
    [slow] = evaluate_gates(_speed_record(BASE * 1.5), [GateSpec(field=field, max_drop_percent=10)], base)
    assert not slow and "Mann-Whitney" in slow.message
    [median] = evaluate_gates(faster, [GateSpec(field="latency_p50_ms", max_rise_percent=10)], base)
    assert median and "median latency" in median.message


def _mp4_record(ssim: float, scale: int, threads: int | None):
    entry = {"model": "m", "backend": "cpu", "input": "clip", "status": "ok",
             "summary": {"mp4_face_ssim_mean": ssim, "mp4_face_psnr_mean": 40.0},
             "viewer": {"region": "mp4_face", "window": [0, 0, 800, 900], "ssim_scale": scale},
             "mp4_encoding": {"preset": "superfast", "crf": 18, "threads": threads}}
    return typed_record(runs=[entry])


def test_a_relative_mp4_gate_refuses_a_baseline_measured_otherwise():
    """Record schema 6 measures the viewer's SSIM at a viewing scale and encodes output.mp4 on one thread: a
    baseline of the old definitions (scale 1, x264's own threads) is not compared with, whichever way it goes."""
    gate = GateSpec(field="mp4_face_ssim_mean", max_drop=0.01)
    old, new = _mp4_record(0.95, 1, None), _mp4_record(0.99, 3, 1)
    [result] = evaluate_gates(new, [gate], old)
    assert not result
    assert "SSIM scale 1 in the baseline, 3 here" in result.message
    assert "x264 threads x264's default in the baseline, 1 here" in result.message
    [psnr] = evaluate_gates(new, [GateSpec(field="mp4_face_psnr_mean", max_drop=0.5)], old)
    assert not psnr and "SSIM scale" not in psnr.message and "x264 threads" in psnr.message
    [same] = evaluate_gates(_mp4_record(0.985, 3, 1), [gate], new)  # one definition: judged as ever
    assert same and "drop of 0.005" in same.message
    [lossless] = evaluate_gates(_mp4_record(0.99, 3, 1), [GateSpec(field="psnr_mean", max_drop=1)], old)
    assert "not the same measure" not in lossless.message
