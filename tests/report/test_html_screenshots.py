"""What a person sees first, in a real browser: headless Chromium screenshots of the report, compare and
sign-off pages, their first screen checked for the verdicts' colours (green ok, red flagged).

Skipped where no Chromium is installed (`apt-get install chromium`). Set EVALKIT_SCREENSHOTS=DIR to keep the
screenshots there for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import find_browser

OK_GREEN = (217, 242, 217)  # #d9f2d9, the pages' "ok" / "pass" / "best" background
BAD_RED = (249, 214, 213)  # #f9d6d5, "flagged" / "FAIL" / "worst"


def _browser() -> str:
    return find_browser() or pytest.skip("no headless browser here (apt-get install chromium)")


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1000) -> np.ndarray:
    """The first ``height`` pixels of ``page`` at ``width``, as Chromium draws it: RGB uint8."""
    subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    keep = os.environ.get("EVALKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    return cv2.imread(str(out))[..., ::-1]


def pixels_of(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(np.abs(image.astype(int) - colour) <= 2, axis=-1)))


def test_the_report_shows_the_verdicts_first(demo_run, tmp_path):
    """At 1400 x 500, before any scrolling, only the verdict table is in view: its ok (green) and flagged (red)
    cells are there; the summary tables' colours start further down."""
    first = screenshot(demo_run / "report.html", tmp_path / "report_first_screen.png", height=500)
    assert pixels_of(first, OK_GREEN) > 2000 and pixels_of(first, BAD_RED) > 2000
    full = screenshot(demo_run / "report.html", tmp_path / "report.png", height=1000)
    assert full.shape[:2] == (1000, 1400)


def test_compare_shows_its_headline_first(demo_compared_with_itself, tmp_path):
    code, out, _, _ = demo_compared_with_itself
    assert code == 0
    image = screenshot(out / "comparison.html", tmp_path / "compare.png", height=800)
    ink = np.count_nonzero(image.min(axis=-1) < 100)  # dark text
    assert ink > 5000  # the headline and verdict table are drawn, not a blank page


def test_the_signoff_page_shows_the_verdicts_first(demo_run, tmp_path):
    """A sign-off page written from the demo run's record: its verdict per run table within the first screen."""
    from evalkit.ci.signoff import build_signoff, write_signoff
    from evalkit.config.suite import load_suite
    from evalkit.record.summary import load_run

    record = load_run(demo_run)
    loaded = load_suite(Path(record.suite.path))
    model = Path(record.models["copycat"].generator.path)
    signoff = build_signoff(loaded, model, demo_run, record)
    _, html = write_signoff(signoff, tmp_path / "signoff")
    text = html.read_text()
    assert text.index("Verdict per run") < text.index("Criteria")
    image = screenshot(html, tmp_path / "signoff.png", width=1100, height=900)
    assert pixels_of(image, OK_GREEN) > 1000 and pixels_of(image, BAD_RED) > 1000
