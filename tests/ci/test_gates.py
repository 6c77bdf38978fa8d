"""Gates, baselines and the CI outputs: known outcomes on fixtures built to pass or to fail."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import soundfile

from evalkit.cli import main
from evalkit.ci.gates import SPEED_ALPHA, speed_regression
from evalkit.record.summary import load_run
from tests.conftest import demo_suite_data, write_suite

GATES = [
    {"field": "psnr_mean", "op": ">=", "value": 35},  # reference 56 dB, lag2 40 dB, noisy 30 dB
    {"field": "ssim_min", "op": ">=", "value": 0.9},
    {"name": "in sync with the source", "field": "sync_offset_vs_ground_truth_frames", "abs": True, "op": "<=",
     "value": 1},
    {"field": "nan_count", "op": "==", "value": 0},
]


@pytest.fixture(scope="module")
def gate_suite(fixtures_dir, tmp_path_factory):
    """The demo's models on 4 s of its audio (97 frames), plus the NaN-producing fixture, with gates."""
    tmp = tmp_path_factory.mktemp("gates")
    wav, sr = soundfile.read(fixtures_dir / "clip" / "speech.wav", dtype="float32")
    soundfile.write(tmp / "short.wav", wav[: 4 * sr], sr)
    data = demo_suite_data(fixtures_dir)
    encoder = data["models"][0]["audio_encoder"]
    data["models"] = [m for m in data["models"] if m["name"] in ("reference", "lag2", "noisy")] + [
        {"name": "nan", "generator": str(fixtures_dir / "models" / "nan.onnx"), "audio_encoder": encoder}]
    data["inputs"][0]["audio"] = str(tmp / "short.wav")
    data["metrics"] = {"trim_to_shortest": True}  # default lags: the sync threshold is calibrated for +/-15
    data["timing"] = {"warmup": 2, "min_timed_frames": 30, "min_seconds": 0}
    data["gates"] = GATES
    return tmp, data


@pytest.fixture(scope="module")
def gated_run(gate_suite):
    tmp, data = gate_suite
    suite = write_suite(tmp / "gated.yaml", data)
    junit, md = tmp / "out" / "junit.xml", tmp / "out" / "summary.md"
    # one worker: the combinations run one after another, so their JUnit times add up to at most the run's
    code = main(["run", str(suite), "--out", str(tmp / "reports"), "--junit", str(junit), "--summary-md", str(md),
                 "--workers", "1"])
    runs = sorted((tmp / "reports" / "demo").iterdir())
    return code, runs[-1], junit, md


def failed(run_dir) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for g in load_run(run_dir).gates:
        out.setdefault(g.model, set())
        if not g.passed:
            out[g.model].add(g.field)
    return out


def test_each_fixture_fails_exactly_its_gate_and_the_run_exits_1(gated_run):
    code, run_dir, _, _ = gated_run
    assert code == 1
    assert failed(run_dir) == {
        "reference": set(),
        "lag2": {"sync_offset_vs_ground_truth_frames"},
        "noisy": {"psnr_mean", "ssim_min"},
        "nan": {"nan_count"},
    }
    assert not load_run(run_dir).gates_passed


def without_face(data: dict) -> dict:
    """The gate suite without dlib's landmarks and identity (``metrics.face``), for the runs after the gated one:
    they check exit codes and gates on fidelity fields (the gated run measures faces, NaN model included)."""
    return dict(data, metrics=dict(data["metrics"], face=False))


def test_all_passing_gates_exit_0(gate_suite, tmp_path):
    _, data = gate_suite
    data = dict(without_face(data), models=data["models"][:1])
    assert main(["run", str(write_suite(tmp_path / "s.yaml", data)), "--out", str(tmp_path)]) == 0


def test_junit_has_one_case_per_gate_and_failures_carry_numbers(gated_run):
    _, run_dir, junit, _ = gated_run
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    gate_cases = [c for c in cases if c.get("name") != "run"]
    assert len(gate_cases) == 4 * len(GATES)  # four models, one backend, one input
    assert len(cases) - len(gate_cases) == 4  # and each run's own case
    # Each case carries its own time (a run's: its generation and measuring; a gate's: its evaluation), so the
    # cases add up to at most the run's wall time (they were 4 gates x the run's time each, 4x too much).
    record = load_run(run_dir)
    total = float(root.get("time"))
    # abs 1e-3 s: JUnit's times are written with three decimals
    assert total == pytest.approx(record.wall_seconds, abs=1e-3)
    assert sum(float(c.get("time")) for c in cases) <= total
    runs = {c.get("classname"): float(c.get("time")) for c in cases if c.get("name") == "run"}
    assert runs["demo.noisy.cpu.talking_head"] == pytest.approx(
        next(e.generate_seconds for e in record.runs if e.model == "noisy"), abs=1e-3)
    assert all(float(c.get("time")) < 1 for c in gate_cases)
    failures = root.findall(".//failure")
    assert len(failures) == 4 and root.find("testsuite").get("failures") == "4"
    psnr = next(c for c in cases if "noisy" in c.get("classname") and c.get("name") == "psnr_mean >= 35")
    assert "psnr_mean = 30.0" in psnr.find("failure").get("message")


def test_markdown_lists_failures_first(gated_run):
    _, run_dir, _, md = gated_run
    rows = [line for line in md.read_text().splitlines() if line.startswith("| FAIL") or line.startswith("| pass")]
    assert rows[0].startswith("| FAIL") and rows[-1].startswith("| pass")
    assert max(i for i, r in enumerate(rows) if r.startswith("| FAIL")) < min(
        i for i, r in enumerate(rows) if r.startswith("| pass"))
    text = md.read_text()
    assert "FAILED (12/16 gates; 1/4 runs ok)" in text  # reference alone is ok
    # the verdicts lead: before the gates, one row per run, with what each rests on and the report's path
    assert text.index("### Verdict per run") < text.index("### Gates")
    assert f"Report: `{run_dir}/report.html`" in text
    verdicts = {line.split("|")[1].strip().split(" / ")[0]: line.split("|")[2] for line in text.splitlines()
                if line.startswith("| ") and " / cpu / " in line.split("|")[1]}
    assert verdicts["reference"].strip() == "ok"
    assert "**sync late**" in verdicts["lag2"] and "**gate failed**" in verdicts["lag2"]
    assert "**fidelity low**" in verdicts["noisy"] and "**NaN/Inf**" in verdicts["nan"]


def test_relative_gates_against_a_baseline(gate_suite, gated_run, tmp_path, capsys):
    _, data = gate_suite
    _, run_dir, _, _ = gated_run
    assert main(["baseline", "set", str(run_dir), "--name", "team", "--dir", str(tmp_path / "baselines")]) == 0
    base = tmp_path / "baselines" / "team"
    assert (base / "run.json").is_file() and (base / "summary.csv").is_file() and not list(base.rglob("*.mp4"))
    relative = dict(without_face(data), baseline=str(base),
                    gates=[{"field": "ssim_mean", "max_drop": 0.005, "models": ["reference"]}])
    relative["models"] = [dict(data["models"][0], generator=data["models"][2]["generator"])]  # 'reference' is now noisy
    code = main(["run", str(write_suite(tmp_path / "rel.yaml", relative)), "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and "ssim_mean" in out and "drop of 0.48" in out and "allowed 0.005" in out
    same = dict(relative, models=data["models"][:1])
    assert main(["run", str(write_suite(tmp_path / "same.yaml", same)), "--out", str(tmp_path / "r")]) == 0


def test_missing_baseline_is_a_usage_error(gate_suite, tmp_path, capsys):
    _, data = gate_suite
    missing = dict(data, baseline="no-such-baseline", gates=[{"field": "fps", "max_drop_percent": 10}])
    assert main(["run", str(write_suite(tmp_path / "s.yaml", missing)), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "baseline: 'no-such-baseline' not found" in err and "evalkit baseline set" in err
    assert not list((tmp_path / "r").rglob("run.json"))


def test_speed_gate_flags_a_20_percent_slowdown():
    rng = np.random.default_rng(0)
    base = rng.normal(20.0, 0.6, 200)  # ms, 3 % noise
    slow = rng.normal(24.0, 0.72, 200)
    regressed, ratio, p = speed_regression(base, slow, max_percent=10)
    # abs 0.02: the ratio of two medians (latency_p50_ms) of 200 samples with 3 % noise: each median's
    # standard error is about 1.25 x 3 % / sqrt(200) = 0.27 %, the ratio's about 0.0045, so 0.02 is four of
    # them; the gate's 10 % step is 0.1
    assert regressed and ratio == pytest.approx(1.2, abs=0.02) and p < SPEED_ALPHA


def test_speed_gate_false_alarm_rate_on_same_distribution():
    """Two runs of one distribution with 3 % noise, 1000 seeds: how often is a 10 % regression declared?"""
    alarms = 0
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        base, again = rng.normal(20.0, 0.6, 100), rng.normal(20.0, 0.6, 100)
        alarms += speed_regression(base, again, max_percent=10)[0]
    assert alarms == 0  # both tests must agree; a 10 % change in the median never happens by 3 % noise here
    significant_only = sum(speed_regression(np.random.default_rng(s).normal(20, 0.6, 100),
                                            np.random.default_rng(s + 5000).normal(20, 0.6, 100), 0)[0]
                           for s in range(1000))
    assert significant_only / 1000 <= 2 * SPEED_ALPHA  # the Mann-Whitney test alone: about alpha, as designed


@pytest.mark.parametrize("reliable, passed", [(1, True), (0, False)])
def test_a_video_lag_gate_acts_only_on_a_reliable_lag(reliable, passed):
    """A gate on the video-to-video lag passes on a reliable 0 and fails, saying why, on an unreliable one."""
    from evalkit.ci.gates import evaluate_gates
    from evalkit.config.suite import GateSpec

    from tests.record.typed import typed_record

    entry = {"summary": {"video_lag_frames": 0, "video_lag_confidence": 20.0 if reliable else 2.0,
                         "video_lag_reliable": reliable}}
    gate = GateSpec.model_validate({"field": "video_lag_frames", "op": "<=", "value": 1, "abs": True})
    [result] = evaluate_gates(typed_record(runs=[entry]), [gate], None)
    assert result.passed is passed
    assert passed or "video-to-video lag" in result.message
