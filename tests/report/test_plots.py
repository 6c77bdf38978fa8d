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


def _savefig_tight(fig) -> np.ndarray:
    """The independent reference: matplotlib's own savefig(bbox_inches="tight") PNG, quantized as the report's."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.PNG_DPI, bbox_inches="tight", pad_inches=plots.PNG_PAD_INCHES)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colors=plots.PNG_COLOURS, method=Image.Quantize.FASTOCTREE)
    return np.asarray(image.convert("RGB"))


def test_a_figure_past_its_canvas_is_savefigs_picture():
    """A figure whose x label lies below its canvas (no tight_layout, as the per-frame curves): laid out once,
    rendered once into the tight box as raw RGBA, its pixels are those of savefig(bbox_inches="tight") (which lays
    it out twice and writes a PNG), every one of them."""
    def figure():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 3.6))
        x = np.arange(97)
        ax1.plot(30 + np.sin(x / 7), lw=1, label="model / cpu / clip")
        ax2.plot(0.9 + 0.05 * np.cos(x / 5), lw=1, label="model / cpu / clip")
        for ax in (ax1, ax2):
            ax.set(xlabel="frame", ylabel="dB", title="PSNR per frame (inner)")
            ax.legend(fontsize=7, loc="lower left")
        return fig

    fig = figure()
    fig.set_dpi(plots.PNG_DPI)
    fig.draw_without_rendering()
    assert fig.get_tightbbox().y0 < 0  # drawn past the canvas: the savefig path
    expected = _savefig_tight(fig)
    plt.close(fig)
    image = _png(plots.to_base64_png(figure()))
    assert image.shape == expected.shape
    assert np.array_equal(image, expected)
