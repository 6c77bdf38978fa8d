"""The views of a run: summary.csv, frames.csv and report.html, rendered from run.json."""

from __future__ import annotations

import json
import re

import pandas as pd

from evalkit.record.summary import SUMMARY_COLUMNS, number
from evalkit.report.tables import FRAMES_COLUMNS

REQUIRED_SUMMARY = ["model", "backend", "input", "psnr_mean", "psnr_min", "ssim_mean", "ssim_min", "out_mean",
                    "out_std", "out_min", "out_max", "nan_count", "inf_count", "throughput_fps", "throughput_end_to_end_fps",
                    "latency_p50_ms", "latency_p99_ms"]


def test_summary_csv_has_the_documented_columns(demo_run):
    summary = pd.read_csv(demo_run / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(REQUIRED_SUMMARY) <= set(summary.columns)
    assert list(summary["model"]) == ["reference", "lag2", "noisy", "reference_fp16", "mobile-unet", "copycat"]
    assert set(summary["protocol"]) == {"reconstruction"}
    assert (summary["nan_count"] == 0).all() and (summary["status"] == "ok").all()
    rows = (demo_run / "summary.csv").read_text().splitlines()
    frames = SUMMARY_COLUMNS.index("frames")
    assert rows[1].split(",")[frames] == str(summary["frames"][0]) and summary["frames"][0] > 0  # "317", not "317.0"
    assert summary["nan_count"].dtype == "int64" and summary["sync_reliable"].dtype == "int64"


def test_summary_tells_the_demo_story(demo_run):
    s = pd.read_csv(demo_run / "summary.csv").set_index("model")
    assert s.loc["reference", "psnr_mean"] > 50  # near the ground truth
    assert 25 < s.loc["noisy", "psnr_mean"] < s.loc["reference", "psnr_mean"] - 20  # lower, by its pattern
    assert s.loc["mobile-unet", "psnr_mean"] < 20  # far off ...
    assert 1 < s.loc["mobile-unet", "throughput_fps"] < s.loc["reference", "throughput_fps"]  # ... with a real network's speed


def test_summary_numbers_are_the_records(demo_run):
    record = json.loads((demo_run / "run.json").read_text())
    summary = pd.read_csv(demo_run / "summary.csv")
    for entry, (_, row) in zip(record["runs"], summary.iterrows()):
        assert row["psnr_mean"] == number(entry["summary"]["psnr_mean"])  # unrounded, nothing recomputed (inf too)
        assert row["timed_inferences"] == len(entry["timed_ms"])


def test_frames_csv_is_tidy(demo_run):
    frames = pd.read_csv(demo_run / "frames.csv")
    assert list(frames.columns) == FRAMES_COLUMNS
    assert set(frames["region"]) == {"inner", "mouth", "full", "mp4_face"}
    assert len(frames) == 6 * 4 * 317  # six demo models x four regions x 317 frames
    one = frames[(frames.model == "reference") & (frames.region == "inner")]
    assert list(one["frame"]) == list(range(317)) and one["latency_ms"].notna().all()


def test_warmup_is_recorded_apart_and_counts_match_the_suite(demo_run):
    import yaml

    from tests.conftest import README_DEMO_SUITE

    timing = yaml.safe_load(README_DEMO_SUITE.read_text())["timing"]  # the demo run is suites/demo.yaml's
    record = json.loads((demo_run / "run.json").read_text())
    for entry in record["runs"]:
        assert len(entry["warmup_ms"]) == timing["warmup"]
        assert len(entry["timed_ms"]) >= timing["min_timed_frames"]
        assert entry["timed_seconds"] >= timing["min_seconds"]
        assert entry["summary"]["warmup_iterations"] == timing["warmup"]


def test_report_is_self_contained_with_every_section(demo_run):
    html = (demo_run / "report.html").read_text()
    for section in ["summary", "fidelity", "sync", "copy", "parity", "speed", "outputs", "runs", "worst", "videos",
                    "run"]:
        assert f'id="{section}"' in html
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.replace("data:image/png;base64,", ""))
    assert "<script" not in html and "<link" not in html
    record = json.loads((demo_run / "run.json").read_text())
    # curves per region, sync curves, latency, outputs; four worst-frame thumbnails per run
    assert html.count("data:image/png;base64,") == 4 + 1 + 1 + 1
    assert html.count("data:image/jpeg;base64,") == 4 * len(record["runs"])
    assert "positive offset means the mouth moves after the sound" in html
    assert "lag2 / cpu / talking_head: offset +2 frames (+80 ms)" in html and "2 frames later than the source" in html
    assert 'class="best"' in html and 'class="worst"' in html
    assert html.count('<details class="run"') == len(record["runs"])
    for entry in record["runs"]:
        assert (demo_run / entry["folder"] / "side_by_side.mp4").is_file()
        assert f'<video controls preload="none" src="{entry["folder"]}/side_by_side.mp4">' in html
    assert html.count("ground truth | output, side by side, around the face (every crop box and a margin)") == len(
        record["runs"])


def test_the_views_of_a_record_load_no_numba():
    """`evalkit report` reads a record: summaries and latency statistics, none of the metrics' numba kernels
    (evalkit.metrics imports its fidelity metrics and OutputStats when first asked for them), and they still
    come when asked."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys\nimport evalkit.commands.report, evalkit.measure.view_assets, evalkit.record.summary, "
            "evalkit.report\nprint('numba' in sys.modules)\n"
            "from evalkit.metrics import HIGHER_IS_BETTER, OutputStats, psnr\nprint('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "True"]
