"""Issue 24's rule "keep every number": the demo's per-frame PSNR and SSIM of the lossless regions (inner, mouth,
full), which the streamed pass computes with shortcuts (the template's own frames as the ground truth, SSIM only
around the pixels that differ, the field's metrics fed from memory), equal a plain whole-frame computation from
the run's written files, frame by frame, within 1e-9 dB and 1e-9.

The plain computation: every frame decoded from the files (frames_inner.mkv; the full frame rebuilt as the
template with the inner region pasted back, as the run's own record defines it), the ground truth decoded
whole, PSNR from the integer squared error over the whole frame, SSIM's map summed over every pixel of the
whole frame (no bounding rectangle, no pixel counted as 1 unread). The map's float32 values are the ones the
shortcut computes (fidelity.SsimKernel's reasoning); only the order of the float64 sum differs, which moves a
mean of 1e6 values by about 1e-13, far inside 1e-9."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evalkit.config.contract import Contract
from evalkit.media.decode import FrameReader
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics.fidelity import SSIM_SIGMA, SSIM_TRUNCATE, SsimKernel, _ssim_map_sum
from evalkit.pipeline.crop import CropPreparer, load_crop_boxes
from evalkit.pipeline.paste import Paster
from evalkit.record.layout import FRAMES_INNER

TOLERANCE = 1e-9  # the bound; the float64 sums differ in order only (about 1e-13, see the module's text)


def whole_frame_ssim(reference: np.ndarray, candidate: np.ndarray) -> float:
    """SSIM with the map computed and summed over the whole frame: no shortcut."""
    kernel = SsimKernel()
    h, w, c = reference.shape
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    kernel._buffers(reference.shape)
    total = _ssim_map_sum(kernel, reference, candidate, (slice(pad, h - pad), slice(pad, w - pad)))
    return total / ((h - 2 * pad) * (w - 2 * pad) * c)


def whole_frame_psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    err = np.sum((reference.astype(np.int64) - candidate.astype(np.int64)) ** 2) / reference.size
    return math.inf if err == 0 else 10 * math.log10(255.0**2 / err)


def _close(recorded, value: float) -> bool:
    recorded = float(recorded)
    if math.isinf(value) or math.isinf(recorded):
        return recorded == value
    return abs(recorded - value) <= TOLERANCE


@pytest.mark.slow
def test_demo_lossless_regions_equal_a_whole_frame_computation(demo_run):
    record = json.loads((demo_run / "run.json").read_text())
    contract = Contract()
    x1, y1, x2, y2 = contract.mouth_box
    mouth = np.s_[y1:y2, x1:x2]
    checked = 0
    for entry in record["runs"]:
        if entry["status"] != "ok" or not entry.get("fidelity"):
            continue
        files = record["inputs"][entry["input"]]
        truth_info = probe_video(files["ground_truth"]["path"])
        inner_info = probe_video(demo_run / entry["folder"] / FRAMES_INNER)
        boxes = load_crop_boxes(files["crop_boxes"]["path"])
        template = probe_video(files["video"]["path"])
        assert template.path.samefile(truth_info.path)  # the demo reconstructs its own recording
        cropper, paster = CropPreparer(contract), Paster(contract)
        truth = np.empty((truth_info.height, truth_info.width, 3), np.uint8)
        inner = np.empty((inner_info.height, inner_info.width, 3), np.uint8)
        full = np.empty_like(truth)
        fidelity = entry["fidelity"]
        with FrameReader(truth_info) as truths, FrameReader(inner_info) as inners:
            for i in range(entry["compared_frames"]):
                assert truths.read_into(truth) and inners.read_into(inner)
                t = entry["template_indices"][i]
                assert t == i  # the walk shows template frame i at output frame i: the truth is that frame
                truth_inner = cropper.crop_frame(truth, boxes[t]).copy()
                paster.paste(cropper.crop.copy(), inner, truth, boxes[t], out=full)
                for region, (a, b) in {"inner": (truth_inner, inner), "mouth": (truth_inner[mouth], inner[mouth]),
                                       "full": (truth, full)}.items():
                    p, s = whole_frame_psnr(a, b), whole_frame_ssim(a, b)
                    assert _close(fidelity[region]["psnr"][i], p), (entry["model"], region, i, "psnr")
                    assert _close(fidelity[region]["ssim"][i], s), (entry["model"], region, i, "ssim")
                checked += 1
    assert checked >= 4 * 300  # every demo model with a ground truth, every frame


def test_whole_frame_reference_is_not_the_shortcut_on_a_known_case():
    """The plain computation is SSIM: equal frames give 1, and on a hand-made pair it agrees with scikit-image
    (float64) within float32's 1e-6; the shortcut gives the same within 1e-9."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = a.copy()
    b[10:20, 12:30] = rng.integers(0, 256, (10, 18, 3), dtype=np.uint8)
    assert whole_frame_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    ref = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert abs(whole_frame_ssim(a, b) - ref) < 1e-6  # float32 against float64
    assert abs(SsimKernel().frame(a, b) - whole_frame_ssim(a, b)) <= TOLERANCE
