"""`evalkit metrics fidelity` on any two videos or frame folders."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from evalkit.cli import main
from tests.conftest import REAL, real_file


def folder_of(frames, path):
    path.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(path / f"{i:04d}.png"), f[:, :, ::-1])
    return path


def run_json(capsys, *args):
    code = main(["metrics", "fidelity", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_folders_of_real_frames_with_a_region(capsys, tmp_path):
    real_file("face_crop328_0.png")
    frames = np.stack([cv2.imread(str(p))[:, :, ::-1] for p in sorted(REAL.glob("*.png"))])
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 5, frames.shape), 0, 255).astype(np.uint8)
    ref, cand = folder_of(frames, tmp_path / "ref"), folder_of(noisy, tmp_path / "cand")
    code, result = run_json(capsys, "--reference", ref, "--candidate", cand, "--roi", "50,100,200,120")
    assert code == 0 and result["frames"] == 6 and result["roi"] == [50, 100, 200, 120]
    a, b = frames[2, 100:220, 50:250], noisy[2, 100:220, 50:250]
    want = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)
    # 1e-5: evalkit's float32 SSIM against scikit-image's float64 (evalkit/metrics/fidelity.py keeps the error
    # below 1e-6; tests/metrics/test_fidelity.py measured 5e-7 at worst)
    assert abs(result["ssim"][2] - want) < 1e-5
    assert result["psnr_min"] == min(result["psnr"]) and {"psnr_mean", "ssim_mean", "ssim_min"} <= set(result)


def test_video_against_itself_is_inf_and_counted(capsys, fixtures_dir):
    clip = fixtures_dir / "clip" / "talking_head.mkv"
    code, result = run_json(capsys, "--reference", clip, "--candidate", clip)
    assert code == 0 and result["frames"] == 317
    assert result["psnr_mean"] == "inf" and result["psnr_inf_frames"] == 317 and math.isinf(float(result["psnr"][0]))
    assert result["ssim_mean"] == 1.0


def test_different_frame_counts_are_an_error_unless_trimmed(capsys, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    ref, cand = folder_of(frames, tmp_path / "ref"), folder_of(frames[:3], tmp_path / "cand")
    code, err = run_json(capsys, "--reference", ref, "--candidate", cand)
    assert code == 2 and "has 5 frames" in err and "has 3" in err and "--trim" in err
    code, result = run_json(capsys, "--reference", ref, "--candidate", cand, "--trim")
    assert code == 0 and result["frames"] == 3
