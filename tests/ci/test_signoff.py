"""History of runs, and release sign-off records that can be verified."""

from __future__ import annotations

import json
import sqlite3

import pytest

from evalkit.cli import main
from evalkit.record.environment import source_sha256
from tests.conftest import release_suite_data, write_suite


def signoff_suite_data(fixtures_dir, folder, seconds: float) -> dict:
    """suites/release.yaml on the test fixtures with the first ``seconds`` of the audio, without dlib's landmarks
    and identity descriptors (``metrics.face``): the sign-off, its record and the history are checked here, and
    release.yaml gates on no face metric; tests/pipeline/test_generate_protocols.py runs release.yaml's three
    protocols with them, tests/measure/test_field.py checks their values."""
    data = release_suite_data(fixtures_dir, folder, seconds)
    data["metrics"] = dict(data["metrics"], face=False)
    return data


@pytest.fixture(scope="module")
def release_suite(fixtures_dir, tmp_path_factory):
    """suites/release.yaml on the test fixtures, with 4 s of the audio."""
    tmp = tmp_path_factory.mktemp("release")
    data = signoff_suite_data(fixtures_dir, tmp, 4)
    return tmp, write_suite(tmp / "release.yaml", data)


@pytest.fixture(scope="module")
def signed(release_suite, fixtures_dir):
    tmp, suite = release_suite
    code = main(["signoff", str(suite), "--model", str(fixtures_dir / "models" / "reference.onnx"),
                 "--out", str(tmp / "reports")])
    run_dir = sorted((tmp / "reports" / "release").iterdir())[-1]
    return code, run_dir


def test_signoff_passes_and_records_hashes_and_criteria(signed, release_suite, fixtures_dir):
    code, run_dir = signed
    record = json.loads((run_dir / "signoff.json").read_text())
    assert code == 0 and record["verdict"] == "PASS"
    # suites/release.yaml: 9 gates over 3 protocols, each on the protocols it names: 19 results (no speed gate:
    # an absolute speed measures the machine's load as much as the model).
    assert len(record["criteria"]) == 19 and all(c["passed"] for c in record["criteria"])
    assert not any(c["field"].startswith(("throughput", "latency")) for c in record["criteria"])
    assert [v["verdict"] for v in record["runs"]] == ["ok", "ok", "ok"]  # reconstruction, distant, dubbed
    assert {c["protocol"] for c in record["criteria"]} == {"reconstruction", "distant", "dubbed"}
    assert record["model"]["sha256"] == json.loads((fixtures_dir / "manifest.json").read_text())[
        "files"]["models/reference.onnx"]["sha256"]
    assert len(record["suite"]["sha256"]) == 64 and record["evalkit"] and len(record["digest"]) == 64
    assert record["environment"]["versions"]["evalkit_source_sha256"] == source_sha256()  # the code that signed
    assert "PASS" in (run_dir / "signoff.html").read_text()


def test_verify_untouched_altered_and_other_model(signed, fixtures_dir, tmp_path, capsys):
    _, run_dir = signed
    model = str(fixtures_dir / "models" / "reference.onnx")
    assert main(["signoff", "verify", str(run_dir / "signoff.json"), "--model", model]) == 0
    record = json.loads((run_dir / "signoff.json").read_text())
    record["criteria"][0]["value"] = 99.0  # one value changed
    altered = tmp_path / "signoff.json"
    altered.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["signoff", "verify", str(altered), "--model", model]) == 1
    assert "was altered" in capsys.readouterr().out
    other = str(fixtures_dir / "models" / "noisy.onnx")
    assert main(["signoff", "verify", str(run_dir / "signoff.json"), "--model", other]) == 1
    assert "is not the model this record signs off" in capsys.readouterr().out


def test_signoff_fails_a_model_that_misses_the_criteria(fixtures_dir, tmp_path, capsys):
    # 2 s of the audio: noisy's 30 dB misses psnr_mean >= 50 whatever the length.
    suite = write_suite(tmp_path / "release.yaml", signoff_suite_data(fixtures_dir, tmp_path, 2))
    code = main(["signoff", str(suite), "--model", str(fixtures_dir / "models" / "noisy.onnx"),
                 "--out", str(tmp_path / "reports-noisy")])
    out = capsys.readouterr().out
    assert code == 1 and "sign-off FAIL" in out and "psnr_mean" in out


def test_history_shows_both_runs_in_order(signed, release_suite, capsys):
    # The first run is the sign-off's (release.yaml with its own model file, recorded in tmp/reports like any
    # run); a second run of the suite goes into the same folder.
    tmp, suite = release_suite
    code, first = signed
    assert code == 0
    out_dir = tmp / "reports"
    assert main(["run", str(suite), "--out", str(out_dir)]) == 0
    db = out_dir / "history.sqlite"
    with sqlite3.connect(db) as con:
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_utc, run_id")]
    assert len(run_ids) == 2 and run_ids[0] == first.name
    capsys.readouterr()
    assert main(["history", "--db", str(db), "--suite", "release", "--field", "psnr_mean"]) == 0
    out = capsys.readouterr().out
    assert out.index(run_ids[0]) < out.index(run_ids[1])
    assert "psnr_mean:" in out and "candidate/cpu/talking_head" in out
    html = (out_dir / "history.html").read_text()
    assert html.count("data:image/png;base64,") == 1  # the one field asked for
    assert run_ids[0] in html and run_ids[1] in html
    from evalkit.ci.history import gate_limits, runs

    assert gate_limits(runs(db, "release"), "psnr_mean") == [(">=", 50.0, False)]  # drawn on the trend
    assert gate_limits(runs(db, "release"), "sync_offset_vs_ground_truth_frames") == [("<=", 1.0, True)]


def _handmade_signoff(tmp_path):
    """A sign-off record of a small file, as build_signoff writes it, without running a suite."""
    from evalkit.record.environment import sha256_file
    from evalkit.ci.signoff import SCHEMA, canonical_digest

    model = tmp_path / "model.onnx"
    model.write_bytes(b"a model's bytes")
    record = {"schema": SCHEMA, "created_utc": "2024-05-01T10:00:00+00:00",
              "model": {"path": str(model), "sha256": sha256_file(model)}, "criteria": [
                  {"gate": "psnr_mean >= 50", "value": "inf", "passed": True}], "verdict": "PASS"}
    record["digest"] = canonical_digest(record)
    record["signature"] = None
    return model, record


def test_keygen_sign_and_verify_with_ed25519(tmp_path, capsys):
    from evalkit.ci.signoff import load_private_key, sign

    assert main(["signoff", "keygen", "--out", str(tmp_path / "keys")]) == 0
    private, public = tmp_path / "keys" / "signoff_key.pem", tmp_path / "keys" / "signoff_key.pub.pem"
    assert private.stat().st_mode & 0o777 == 0o600 and public.is_file()
    assert main(["signoff", "keygen", "--out", str(tmp_path / "keys")]) == 2  # never replaces a key
    model, record = _handmade_signoff(tmp_path)
    signed = sign(record, load_private_key(private))
    path = tmp_path / "signoff.json"
    path.write_text(json.dumps(signed))
    capsys.readouterr()
    assert main(["signoff", "verify", str(path), "--model", str(model), "--public-key", str(public)]) == 0
    assert "was signed with the key of" in capsys.readouterr().out
    # Tampered: a value changed and the digest recomputed, as anyone could do; the signature catches it.
    from evalkit.ci.signoff import canonical_digest

    signed["criteria"][0]["value"] = 99.0
    signed["digest"] = canonical_digest(signed)
    path.write_text(json.dumps(signed))
    assert main(["signoff", "verify", str(path), "--model", str(model)]) == 0  # integrity alone cannot tell
    capsys.readouterr()
    assert main(["signoff", "verify", str(path), "--model", str(model), "--public-key", str(public)]) == 1
    assert "signature does not match" in capsys.readouterr().out
    # Another key pair does not verify it either.
    assert main(["signoff", "keygen", "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["signoff", "verify", str(path), "--model", str(model), "--public-key",
                 str(tmp_path / "other" / "signoff_key.pub.pem")]) == 1
    assert "signed by another key" in capsys.readouterr().out


def test_an_unsigned_record_verifies_integrity_only(tmp_path, capsys):
    model, record = _handmade_signoff(tmp_path)
    path = tmp_path / "signoff.json"
    path.write_text(json.dumps(record))
    keys = tmp_path / "keys"
    assert main(["signoff", "keygen", "--out", str(keys)]) == 0
    capsys.readouterr()
    assert main(["signoff", "verify", str(path), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "integrity only" in out and "origin was not checked" in out
    assert main(["signoff", "verify", str(path), "--model", str(model), "--public-key",
                 str(keys / "signoff_key.pub.pem")]) == 1  # asked for origin: an unsigned record fails
    assert "is unsigned" in capsys.readouterr().out


def test_a_bad_key_file_is_a_usage_error(tmp_path, capsys):
    model, record = _handmade_signoff(tmp_path)
    path = tmp_path / "signoff.json"
    path.write_text(json.dumps(record))
    (tmp_path / "pub.pem").write_text("not a key")
    assert main(["signoff", "verify", str(path), "--model", str(model), "--public-key", str(tmp_path / "pub.pem")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--public-key" in err and "PEM public key" in err
