"""Report figures (matplotlib, Agg), returned as base64 PNG for embedding in one self-contained page."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from evalkit.record import number  # noqa: E402


def to_base64_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _label(entry: dict) -> str:
    return f"{entry['model']} / {entry['backend']} / {entry['input']}"


def per_frame_curves(entries: list[dict], region: str) -> str:
    """PSNR and SSIM per frame of one region, one line per run (inf PSNR, identical frames, is not drawn)."""
    fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(13, 3.6))
    for entry in entries:
        values = entry["fidelity"][region]
        psnr = np.array([number(v) for v in values["psnr"]])
        psnr[~np.isfinite(psnr)] = np.nan
        ax_p.plot(psnr, lw=1, label=_label(entry))
        ax_s.plot([number(v) for v in values["ssim"]], lw=1, label=_label(entry))
    ax_p.set(title=f"PSNR per frame ({region})", xlabel="frame", ylabel="dB")
    ax_s.set(title=f"SSIM per frame ({region})", xlabel="frame", ylabel="SSIM")
    for ax in (ax_p, ax_s):
        ax.grid(alpha=0.3)
    ax_s.legend(fontsize=7, loc="lower left")
    return to_base64_png(fig)


def sync_curves(entries: list[dict]) -> str:
    """Cross-correlation of audio loudness and mouth opening over lags, the chosen lag marked, one panel per run."""
    with_curve = [e for e in entries if e.get("sync") and e["sync"]["curve"]]
    cols = min(3, max(1, len(with_curve)))
    rows = max(1, -(-len(with_curve) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(with_curve):]:
        ax.axis("off")
    for ax, entry in zip(axes.ravel(), with_curve):
        sync = entry["sync"]
        ax.plot(sync["lags"], [number(v) for v in sync["curve"]], lw=1.2)
        ax.axvline(sync["offset_frames"], color="red", lw=1, label=f"chosen {sync['offset_frames']:+d}")
        gt = entry.get("ground_truth_sync")
        if gt and not gt["no_signal"]:
            ax.axvline(gt["offset_frames"], color="grey", ls="--", lw=1, label=f"source {gt['offset_frames']:+d}")
        ax.set(title=_label(entry), xlabel="lag (frames; + = mouth after sound)", ylabel="r")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_base64_png(fig)


def latency_distribution(entries: list[dict]) -> str:
    """Box plot of the timed inference latencies of each run (measured apart, warm-up excluded)."""
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(entries)))
    data = [[number(v) for v in e["timed_ms"]] for e in entries]
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(entries) + 1), [_label(e) for e in entries], fontsize=8)
    ax.set(xlabel="inference latency (ms), whiskers at p1 and p99", xscale="log")
    ax.grid(alpha=0.3, axis="x")
    return to_base64_png(fig)


def output_histograms(entries: list[dict]) -> str:
    """Histogram of raw model output values of each run, with [0, 1] marked."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for entry in entries:
        hist = entry["output_stats"]["histogram"]
        counts = np.asarray(hist["counts"], float)
        edges = np.linspace(hist["low"], hist["high"], len(counts) + 1)
        total = counts.sum() + hist["below"] + hist["above"]
        ax.stairs(counts / max(total, 1), edges, label=_label(entry))
    ax.axvspan(0, 1, color="green", alpha=0.06, label="[0, 1]")
    ax.set(xlabel="output value (before x255 and uint8)", ylabel="fraction of values", yscale="log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return to_base64_png(fig)


def worst_frame_strip(reference: np.ndarray, output: np.ndarray, amplify: float = 4.0) -> str:
    """Ground truth | output | |difference| x amplify as a heat map, side by side (RGB uint8 in, PNG out)."""
    diff = np.abs(reference.astype(np.int16) - output).mean(axis=2) * amplify
    heat = (plt.get_cmap("inferno")(np.clip(diff, 0, 255) / 255.0)[..., :3] * 255).astype(np.uint8)
    strip = np.concatenate([reference, output, heat], axis=1)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(strip[..., ::-1]))
    return base64.b64encode(png.tobytes()).decode("ascii")


def trend(table, field: str, limits: list[tuple[str, float, bool]]) -> str:
    """One field over runs (rows of ``table``, oldest first), a line per column; gate limits dashed."""
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
    ax.set_xticks(x, [str(r)[:19] for r in table.index], rotation=30, ha="right", fontsize=7)
    ax.set(title=field, ylabel=field)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return to_base64_png(fig)
