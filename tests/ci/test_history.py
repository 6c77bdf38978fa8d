"""history.html: one part per suite, each suite's gates drawn only on its own series, runs numbered with commits."""

from __future__ import annotations

from evalkit.ci import history
from tests.record.typed import typed_record


def _record(suite: str, run_id: str, created: str, psnr: float, gates: list[dict]):
    summary = {"model": "m", "backend": "cpu", "input": "clip", "psnr_mean": psnr}
    return typed_record(run_id=run_id, created_utc=created, machine={"cpu": "test cpu"},
                        suite={"name": suite, "path": "/x/s.yaml", "sha256": "0" * 64,
                               "definition": {"gates": gates}},
                        runs=[{"model": "m", "backend": "cpu", "input": "clip", "summary": summary}])


def test_each_suite_gets_its_own_chart_and_only_its_own_gates(tmp_path, monkeypatch):
    from evalkit.report import plots

    db = tmp_path / "history.sqlite"
    gate = {"field": "psnr_mean", "op": ">=", "value": 40.0}
    history.record_run(db, _record("alpha", "a1", "2026-01-01T00:00:00", 45.0, [gate]), tmp_path / "a1")
    history.record_run(db, _record("alpha", "a2", "2026-01-02T00:00:00", 46.0, [gate]), tmp_path / "a2")
    history.record_run(db, _record("beta", "b1", "2026-01-01T12:00:00", 20.0, []), tmp_path / "b1")
    drawn = []
    real_trend = plots.trend
    monkeypatch.setattr(plots, "trend", lambda table, field, limits, ticks=None: drawn.append(
        (field, list(table.columns), list(table.index), limits, ticks)) or real_trend(table, field, limits, ticks))
    html = history.write_history_html(db, None, ["psnr_mean"], tmp_path / "history.html").read_text()
    assert [d[0] for d in drawn] == ["alpha: psnr_mean", "beta: psnr_mean"]  # one chart per suite, never joined
    alpha, beta = drawn
    assert alpha[3] == [(">=", 40.0, False)] and beta[3] == []  # alpha's gate is not drawn on beta's series
    assert len(alpha[2]) == 2 and len(beta[2]) == 1
    assert alpha[4] == ["#1", "#2"] and beta[4] == ["#1"]
    assert 'id="suite-alpha"' in html and 'id="suite-beta"' in html and html.count("data:image/png;base64,") == 2
    assert "a1" in html and "b1" in html
    joined = history.history_table(db, None, "psnr_mean")  # the CLI's table over all suites keeps them apart
    assert sorted(joined.columns) == ["alpha: m/cpu/clip", "beta: m/cpu/clip"]
