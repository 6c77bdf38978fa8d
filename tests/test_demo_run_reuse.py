"""The tests read the README demo's run only when it is what they would make (tests/conftest.py,
``readme_demo_run``): a run from other code, another suite, other fixture files or a failed combination is
refused, and the tests make their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.config.suite import load_suite
from tests.conftest import readme_demo_run


@pytest.fixture
def candidate(demo_run, demo_suite, fixtures_dir, tmp_path):
    """A reports/demo folder holding one run whose record names ``demo_suite`` and the tests' fixtures, made by
    this code on this machine (the session's demo run, its paths moved there); (reports folder, its run.json)."""
    record = json.loads((demo_run / "run.json").read_text())
    record["suite"].update(path=str(demo_suite), sha256=load_suite(demo_suite).sha256)

    def moved(fact: dict) -> dict:
        parts = Path(fact["path"]).parts
        return dict(fact, path=str(fixtures_dir / parts[-2] / parts[-1]))  # clip/... or models/...

    for model in record["models"].values():
        model["generator"], model["audio_encoder"] = moved(model["generator"]), moved(model["audio_encoder"])
    for facts in record["inputs"].values():
        for key, fact in facts.items():
            if isinstance(fact, dict) and "sha256" in fact:
                facts[key] = moved(fact)
    run_json = tmp_path / "reports" / "demo" / "20990101T000000Z-0001" / "run.json"
    run_json.parent.mkdir(parents=True)
    run_json.write_text(json.dumps(record))
    return run_json.parent.parent, run_json


def found(reports: Path, suite: Path, fixtures: Path) -> Path | None:
    return readme_demo_run(reports, suite, fixtures)[0]


def test_the_same_run_is_found(candidate, demo_suite, fixtures_dir, monkeypatch):
    monkeypatch.delenv("EVALKIT_TESTS_OWN_DEMO", raising=False)
    reports, run_json = candidate
    assert found(reports, demo_suite, fixtures_dir) == run_json.parent
    monkeypatch.setenv("EVALKIT_TESTS_OWN_DEMO", "1")
    assert found(reports, demo_suite, fixtures_dir) is None


@pytest.mark.parametrize("change", ["code", "package", "machine", "suite", "model file", "failed combination"])
def test_a_run_that_differs_is_refused(candidate, demo_suite, fixtures_dir, monkeypatch, change):
    monkeypatch.delenv("EVALKIT_TESTS_OWN_DEMO", raising=False)
    reports, run_json = candidate
    record = json.loads(run_json.read_text())
    if change == "code":
        record["versions"]["evalkit_source_sha256"] = "0" * 64  # another checkout's evalkit
    elif change == "package":
        record["versions"]["onnxruntime"] = "0.0.1"
    elif change == "machine":
        record["machine"]["cpu"] = "another CPU"
    elif change == "suite":
        record["suite"]["sha256"] = "0" * 64  # suites/demo.yaml edited since
    elif change == "model file":
        record["models"]["reference"]["generator"]["sha256"] = "0" * 64  # made from another reference.onnx
    else:
        record["runs"][0]["status"] = "failed"
    run_json.write_text(json.dumps(record))
    assert found(reports, demo_suite, fixtures_dir) is None
