"""Runs matched by RunKey (model, backend, input, protocol).

Real runs of the release suite on the fixtures: parity compares each backend with the baseline backend under
the same protocol only (before RunKey, a model's distant and dubbed runs were compared with its reconstruction
run and recorded parity_passed 0); golden outputs are kept and compared per protocol; each timed call's CPU
time is recorded beside its wall time.

A relative speed gate on an unchanged model timed while another process keeps a core busy, and CPU time against
wall time on a quiet pass, were tests here until 2026-12-07: they are about speed on a shared machine, and are
tests/benchmarks/speed_gate_under_load.py now (the gate's logic: tests/report/test_verdicts.py).
"""

from __future__ import annotations

import pytest

from evalkit.cli import main
from evalkit.record.summary import load_run
from tests.conftest import release_suite_data, write_suite

SECONDS = 2


@pytest.fixture(scope="module")
def two_backend_release(fixtures_dir, tmp_path_factory):
    """suites/release.yaml's models, input and protocols (reconstruction, distant, dubbed) with a second CPU backend (basic graph optimisation), one worker."""
    tmp = tmp_path_factory.mktemp("release2")
    data = release_suite_data(fixtures_dir, tmp, SECONDS)
    data["backends"] = [dict(data["backends"][0]),
                        dict(data["backends"][0], name="cpu-basic",
                             session_options={"intra_op_num_threads": 2, "graph_optimization_level": "basic"})]
    data["timing"] = {"warmup": 2, "min_timed_frames": 10, "min_seconds": 0}  # timing's counts, not its speed
    data.pop("gates")  # parity is what is looked at here (2 s of audio is too short for a reliable sync gate)
    # and timing, not dlib's landmarks and identity descriptors (about 0.09 CPU-s a frame of each of the six
    # combinations; tests/measure/test_field.py checks them)
    data["metrics"] = dict(data.get("metrics") or {}, face=False)
    suite = write_suite(tmp / "release.yaml", data)
    code = main(["-q", "run", str(suite), "--out", str(tmp / "reports"), "--workers", "1",
                 "--save-golden", str(tmp / "golden")])
    run_dir = sorted((tmp / "reports" / "release").iterdir())[-1]
    return tmp, data, code, run_dir


def test_every_parity_row_compares_one_protocol_across_backends(two_backend_release):
    _, _, code, run_dir = two_backend_release
    record = load_run(run_dir).to_json_dict()
    assert code == 0
    rows = record["parity"]
    assert len(rows) == 3  # cpu-basic against cpu, under each of the three protocols
    def key(where):  # model/backend/input[/protocol], as RunKey.where writes it (no protocol: reconstruction)
        parts = where.split("/")
        return parts if len(parts) == 4 else [*parts, "reconstruction"]

    for row in rows:
        model, backend, input_name, protocol = key(row["reference"])
        c_model, c_backend, c_input, c_protocol = key(row["candidate"])
        assert (model, input_name, protocol) == (c_model, c_input, c_protocol) and (backend, c_backend) == (
            "cpu", "cpu-basic")
        assert row["passed"], row  # the same graph, another optimisation level: within fp32's tolerance
    assert sorted(key(r["reference"])[3] for r in rows) == ["distant", "dubbed", "reconstruction"]
    by_protocol = {e["protocol"]: e["summary"] for e in record["runs"] if e["backend"] == "cpu-basic"}
    assert all(s["parity_passed"] == 1 for s in by_protocol.values())  # no false parity_passed 0


def test_golden_outputs_are_kept_and_compared_per_protocol(two_backend_release, tmp_path):
    """--save-golden keeps one set per model x input x protocol; a later run compares each protocol's outputs
    with its own (a distant or dubbed run against the reconstruction's outputs would fail every element)."""
    import json

    tmp, data, _, _ = two_backend_release
    entries = json.loads((tmp / "golden" / "golden.json").read_text())["entries"]
    assert sorted(entries) == ["candidate__talking_head", "candidate__talking_head__distant",
                               "candidate__talking_head__dubbed"]
    again = dict(data, backends=data["backends"][:1], golden=str(tmp / "golden"))
    assert main(["-q", "run", str(write_suite(tmp_path / "again.yaml", again)), "--out", str(tmp_path / "r"),
                 "--workers", "1"]) == 0
    record = load_run(sorted((tmp_path / "r" / "release").iterdir())[-1]).to_json_dict()
    golden = {e["protocol"]: e["golden"] for e in record["runs"]}
    assert sorted(golden) == ["distant", "dubbed", "reconstruction"]
    assert all(g["passed"] and g["same_input_tensors"] for g in golden.values()), golden


def test_each_timed_call_records_its_cpu_time_beside_its_wall_time(two_backend_release):
    """Every timed call has its process CPU time, which is at most its two intra-op threads' share of its wall
    time (+ 0.1 ms of clock granularity), and the latency pass records what else used the machine meanwhile."""
    _, _, _, run_dir = two_backend_release
    for entry in load_run(run_dir).to_json_dict()["runs"]:
        assert len(entry["timed_cpu_ms"]) == len(entry["timed_ms"]) >= 10
        assert all(c <= 2 * w + 0.1 for c, w in zip(entry["timed_cpu_ms"], entry["timed_ms"]))
        share = entry["timing_load"]["others_share"]  # a share of all the machine's CPU time, or None
        assert entry["timing_load"]["cpus"] >= 1 and (share is None or 0 <= share <= 1)
