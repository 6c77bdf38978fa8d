"""Report figures (matplotlib, Agg), returned as base64 PNG for embedding in one self-contained page."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evalkit.media.thumbnails import THUMB_JPEG_QUALITY, THUMB_PANEL_PX, difference_strip_jpeg  # noqa: E402,F401
from evalkit.record.summary import number, run_label  # noqa: E402


PNG_COLOURS = 64  # a palette PNG of a line plot: a third of the bytes of an RGBA one, lines and text unchanged to the eye


PNG_DPI = 90
PNG_PAD_INCHES = 0.1  # matplotlib's pad_inches for bbox_inches="tight"


def to_base64_png(fig) -> str:
    """The figure as a palette PNG (PNG_COLOURS colours), base64 for a data: URI, cut to its tight bounding box.

    What ``savefig(bbox_inches="tight", pad_inches=PNG_PAD_INCHES)`` draws, with each step done once: the figure
    is laid out without rendering (savefig's own first pass), the tight box read from that layout, and the figure
    rendered once. When everything drawn lies on the canvas, that one rendering is the canvas's and the box is
    cropped from its pixels (the same picture, give or take the box's rounding to whole pixels); a figure drawn
    past its canvas (a legend beside the axes, as the history's trends have; an x label below a figure with no
    tight_layout) is rendered by savefig into that box, given as the box itself, so that savefig does not lay the
    figure out again, and as raw RGBA, so that no PNG is encoded only to be decoded here. The pixels are
    savefig's (tests/report/test_plots.py compares them)."""
    from PIL import Image

    canvas = fig.canvas
    fig.set_dpi(PNG_DPI)
    fig.draw_without_rendering()
    drawn = fig.get_tightbbox(canvas.get_renderer())  # inches, origin bottom left
    box = drawn.padded(PNG_PAD_INCHES)
    width, height = canvas.get_width_height()
    if drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 * PNG_DPI <= width and drawn.y1 * PNG_DPI <= height:
        canvas.draw()
        x0, x1 = max(0, math.floor(box.x0 * PNG_DPI)), min(width, math.ceil(box.x1 * PNG_DPI))
        y0, y1 = max(0, math.floor(height - box.y1 * PNG_DPI)), min(height, math.ceil(height - box.y0 * PNG_DPI))
        image = Image.fromarray(np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[y0:y1, x0:x1, :3]))
    else:
        image = _saved_rgb(fig, box)
    plt.close(fig)
    # FASTOCTREE: 2 ms a figure here, against 230 ms for MEDIANCUT (1.6 CPU-s of a report's seven figures),
    # and a smaller file; a line plot's few flat colours come out the same to the eye
    image = image.quantize(colors=PNG_COLOURS, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="png")  # optimize=True: 4 % fewer bytes for 0.3 s more per demo report
    return base64.b64encode(out.getvalue()).decode("ascii")


def _saved_rgb(fig, box):
    """``fig`` rendered by savefig into ``box`` (inches), as an RGB image: savefig's raw RGBA, sized as savefig
    sizes its canvas for a box (``Figure.bbox`` of the box at PNG_DPI, whole pixels by ``int``); should the bytes
    not fit that size, the PNG savefig writes, decoded."""
    from matplotlib.transforms import Affine2D, Bbox
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=PNG_DPI, bbox_inches=box)
    raw = buf.getvalue()
    w, h = (int(v) for v in Bbox.from_bounds(0, 0, *box.size).transformed(Affine2D().scale(PNG_DPI)).max)
    if len(raw) == 4 * w * h:
        return Image.frombuffer("RGBA", (w, h), raw, "raw", "RGBA", 0, 1).convert("RGB")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches=box, metadata={"Software": None})
    buf.seek(0)
    return Image.open(buf).convert("RGB")


_label = run_label  # model / backend / input [/ protocol]


def _within_model(entry) -> str:
    """A run's label inside its model's panel: what differs between runs of one model."""
    return _label(entry).split(" / ", 1)[1]


def _by_model(entries: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(entry.model, []).append(entry)
    return groups


def _grid(panels: int, cols: int, width: float, height: float):
    cols = min(cols, max(1, panels))
    rows = max(1, -(-panels // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[panels:]:
        ax.axis("off")
    return fig, axes.ravel()[:panels]


def _psnr_values(entry, region: str) -> np.ndarray:
    psnr = np.array(entry.fidelity[region].psnr, dtype=float)
    psnr[~np.isfinite(psnr)] = np.nan
    return psnr


def _psnr_label(entry, region: str, label: str) -> str:
    """A run's label on the PSNR axis, saying how many of its frames are identical (inf PSNR, not drawn)."""
    values = list(entry.fidelity[region].psnr)
    inf = sum(1 for v in values if v is not None and np.isinf(v))
    if not inf:
        return label
    return f"{label} ({'all' if inf == len(values) else inf} frames identical: inf dB, not drawn)"


def per_frame_curves(entries: list[dict], region: str, max_series: int = 6) -> str:
    """PSNR and SSIM per frame of one region (inf PSNR, identical frames, is not drawn): one line per run on two
    axes, or, past ``max_series`` runs, one row of PSNR | SSIM panels per model with a line per run of it."""
    if len(entries) <= max_series:
        fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(13, 3.6))
        for entry in entries:
            ax_p.plot(_psnr_values(entry, region), lw=1, label=_psnr_label(entry, region, _label(entry)))
            ax_s.plot(list(entry.fidelity[region].ssim), lw=1, label=_label(entry))
        ax_p.set(title=f"PSNR per frame ({region})", xlabel="frame", ylabel="dB")
        ax_s.set(title=f"SSIM per frame ({region})", xlabel="frame", ylabel="SSIM")
        for ax in (ax_p, ax_s):
            ax.grid(alpha=0.3)
        ax_p.legend(fontsize=7, loc="lower left")
        ax_s.legend(fontsize=7, loc="lower left")
        return to_base64_png(fig)
    groups = _by_model(entries)
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 2.1 * len(groups)), squeeze=False, sharex=True)
    for (model, runs), (ax_p, ax_s) in zip(groups.items(), axes):
        for entry in runs:
            ax_p.plot(_psnr_values(entry, region), lw=0.8, label=_psnr_label(entry, region, _within_model(entry)))
            ax_s.plot(list(entry.fidelity[region].ssim), lw=0.8)
        ax_p.set_ylabel(f"{model}\nPSNR (dB)", fontsize=8)
        ax_s.set_ylabel("SSIM", fontsize=8)
        for ax in (ax_p, ax_s):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        ax_p.legend(fontsize=6, loc="lower left", ncol=2)
    axes[0][0].set_title(f"PSNR per frame ({region}), one row per model", fontsize=9)
    axes[0][1].set_title(f"SSIM per frame ({region})", fontsize=9)
    axes[-1][0].set_xlabel("frame")
    axes[-1][1].set_xlabel("frame")
    fig.tight_layout()
    return to_base64_png(fig)


def sync_curves(entries: list[dict]) -> str:
    """Cross-correlation of audio loudness and mouth opening over lags, the chosen lag marked, one panel per run."""
    with_curve = [e for e in entries if e.sync and e.sync.curve]
    many = len(with_curve) > 6
    fig, axes = _grid(len(with_curve), 6 if many else 3, 2.2 if many else 4.3, 1.9 if many else 2.8)
    for ax, entry in zip(axes, with_curve):
        sync = entry.sync
        ax.plot(sync.lags, list(sync.curve), lw=1.2)
        ax.axvline(sync.offset_frames, color="red", lw=1, label=f"chosen {sync.offset_frames:+d}")
        gt = entry.ground_truth_sync
        if gt and not gt.no_signal:
            ax.axvline(gt.offset_frames, color="grey", ls="--", lw=1, label=f"source {gt.offset_frames:+d}")
        ax.set(title=_label(entry).replace(" / ", "/") if many else _label(entry),
               xlabel="lag (frames; + = mouth after sound)" if not many else "lag (frames)", ylabel="r")
        ax.title.set_fontsize(6 if many else 8)
        ax.tick_params(labelsize=6 if many else 8)
        ax.legend(fontsize=6 if many else 7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_base64_png(fig)


def latency_distribution(entries: list[dict]) -> str:
    """Box plot of the timed inference latencies of each run (measured apart, warm-up excluded)."""
    fig, ax = plt.subplots(figsize=(9, 0.6 + (0.45 if len(entries) <= 6 else 0.26) * len(entries)))
    data = [list(e.timed_ms) for e in entries]
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(entries) + 1), [_label(e) for e in entries], fontsize=8)
    ax.set(xlabel="inference latency (ms), whiskers at p1 and p99", xscale="log")
    ax.grid(alpha=0.3, axis="x")
    return to_base64_png(fig)


def output_histograms(entries: list[dict], max_series: int = 6) -> str:
    """Histogram of raw model output values of each run, with [0, 1] marked; past ``max_series`` runs, one panel
    per model."""
    groups = {"": entries} if len(entries) <= max_series else _by_model(entries)
    many = len(groups) > 1
    fig, axes = _grid(len(groups), 3, 4.3, 2.6) if many else plt.subplots(figsize=(9, 3.4))
    axes = list(axes) if many else [axes]
    for ax, (model, runs) in zip(axes, groups.items()):
        for entry in runs:
            hist = entry.output_stats.histogram
            counts = np.asarray(hist.counts, float)
            edges = np.linspace(hist.low, hist.high, len(counts) + 1)
            total = counts.sum() + hist.below + hist.above
            ax.stairs(counts / max(total, 1), edges, label=_within_model(entry) if many else _label(entry))
        ax.axvspan(0, 1, color="green", alpha=0.06, label="[0, 1]")
        ax.set(xlabel="output value (before x255 and uint8)", ylabel="fraction of values", yscale="log")
        if many:
            ax.set_title(model, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_fontsize(7)
            ax.yaxis.label.set_fontsize(7)
        ax.legend(fontsize=6 if many else 7)
        ax.grid(alpha=0.3)
    if many:
        fig.tight_layout()
    return to_base64_png(fig)


def worst_frame_thumbnail(reference: np.ndarray, output: np.ndarray, amplify: float) -> str:
    """Ground truth | output | |difference| x ``amplify`` (media.thumbnails.difference_strip_jpeg) as base64 JPEG."""
    return base64.b64encode(difference_strip_jpeg(reference, output, amplify)).decode("ascii")


def trend(table, field: str, limits: list[tuple[str, float, bool]], ticks: list[str] | None = None) -> str:
    """One field over runs (rows of ``table``, oldest first), a line per column; gate limits dashed; ``ticks``
    names the runs on the axis (default: the table's index)."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    x = np.arange(len(table))
    for column in table.columns:
        values = np.array(table[column], dtype=float)
        values[~np.isfinite(values)] = np.nan
        ax.plot(x, values, marker="o", ms=3, lw=1.2, label=column)
    for op, value, is_abs in limits:
        ax.axhline(value, color="red", ls="--", lw=1, label=f"gate: {'abs ' if is_abs else ''}{op} {value:g}")
        if is_abs:
            ax.axhline(-value, color="red", ls="--", lw=1)
    ax.set_xticks(x, ticks if ticks is not None else [str(r)[:19] for r in table.index], rotation=30, ha="right",
                  fontsize=7)
    ax.set(title=field, ylabel=field)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_base64_png(fig)
