"""The report's figures as PNG (report.plots.to_base64_png): cut to what is drawn, and nothing drawn cut off."""

from __future__ import annotations

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from evalkit.report import plots


def _png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_a_legend_beside_the_axes_is_kept_whole():
    """The history's trend puts its legend right of the axes, past the figure's 10 inches (900 px at 90 dpi): the
    PNG reaches out to it, as savefig's tight box does, and the legend's last column is not white."""
    table = pd.DataFrame({"reference/cpu/talking_head psnr": [40.0, 41.0, 39.5],
                          "lag2/cpu/talking_head psnr": [38.0, 37.0, 38.5]}, index=["r1", "r2", "r3"])
    image = _png(plots.trend(table, "psnr_mean", [(">=", 35.0, False)]))
    assert image.shape[1] > 10 * plots.PNG_DPI
    legend_text = image[:, 10 * plots.PNG_DPI:]
    assert (legend_text < 128).any()  # dark text of the legend's labels past the canvas's edge


def test_a_figure_on_its_canvas_is_cut_to_what_is_drawn():
    """Drawn once and cropped: the PNG is the tight box (the padding of 0.1 inch, 9 px, white on every side)."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    image = _png(plots.to_base64_png(fig))
    assert image.shape[0] < 3 * plots.PNG_DPI and image.shape[1] < 4 * plots.PNG_DPI  # the margins cut
    for edge in (image[:5], image[-5:], image[:, :5], image[:, -5:]):
        assert (edge >= 250).all()  # padding only
