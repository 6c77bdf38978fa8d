"""A SyncTalk_2D dataset folder as an input (evalkit/config/dataset.py), and image folders in natural order."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from evalkit.cli import main
from evalkit.config.dataset import check_dataset, natural_key
from evalkit.errors import UserError
from evalkit.run import run_suite
from evalkit.config.suite import load_suite
from tests.conftest import decode, write_suite
from tests.helpers import DATASET_FRAMES, build_dataset
from tests.helpers import dataset_suite_data as suite_data

# The dataset's frames are the fixture frames after JPEG at quality 95, so the two runs' inputs differ by
# JPEG's loss: measured 44.7 dB worst frame, 45.7 dB mean, between their 320x320 outputs (2026, OpenCV's
# libjpeg writing, ffmpeg's mjpeg decoder reading). 40 dB
# (an RMS difference of 2.5 grey levels) leaves room for codec and resampler versions; a frame paired with
# the wrong neighbour (another mouth, a crop a few pixels off) scores below it (see the swapped-frame test).
SAME_INPUT_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def dataset(fixtures_dir, tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ds") / "may", fixtures_dir)


def test_natural_key_orders_numbers_by_value():
    names = ["10.jpg", "2.jpg", "0.jpg", "100.jpg", "1.jpg", "frame11.png", "frame9.png"]
    assert sorted(names, key=natural_key) == ["0.jpg", "1.jpg", "2.jpg", "10.jpg", "100.jpg", "frame9.png",
                                              "frame11.png"]


def test_check_dataset_lists_frames_in_numeric_order(dataset):
    folder = check_dataset(dataset)
    assert [p.stem for p in folder.frames] == [str(i) for i in range(DATASET_FRAMES)]
    listing = folder.frame_list().read_text().splitlines()
    files = [line.split()[1] for line in listing if line.startswith("file ")]
    assert files == [f"frames/{i}.jpg" for i in range(DATASET_FRAMES)]
    assert folder.frame_list() == folder.frame_list()  # the same list each time


def test_dataset_input_matches_video_and_crop_boxes(dataset, fixtures_dir, tmp_path):
    clip = fixtures_dir / "clip"
    data = suite_data(fixtures_dir, [
        {"name": "ds", "dataset": str(dataset)},
        {"name": "vid", "video": str(clip / "talking_head.mkv"), "audio": str(dataset / "aud.wav"),
         "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(clip / "talking_head.mkv")},
    ])
    loaded = load_suite(write_suite(tmp_path / "s.yaml", data))
    ds = loaded.suite.inputs[0]
    assert ds.audio == dataset / "aud.wav" and ds.landmarks == dataset / "landmarks"
    assert ds.ground_truth == ds.video and ds.video.suffix == ".ffconcat"
    run_dir = run_suite(loaded, out=tmp_path / "reports", log=lambda *_: None)
    [ds_dir] = run_dir.glob("reference__cpu__ds*")
    [vid_dir] = run_dir.glob("reference__cpu__vid*")
    a, b = decode(ds_dir / "frames_inner.mkv"), decode(vid_dir / "frames_inner.mkv")
    assert len(a) == len(b) == 57  # int((193 mel frames - 16) / 80 * 25) + 2
    mse = ((a.astype(np.float64) - b) ** 2).reshape(len(a), -1).mean(axis=1)
    psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))
    assert psnr.min() > SAME_INPUT_PSNR_DB, psnr.min()
    record = json.loads((run_dir / "run.json").read_text())
    assert all(entry["status"] == "ok" for entry in record["runs"])
    # the record names the dataset's own image folder, and the list in evalkit's cache it was read through
    for role in ("video", "ground_truth"):
        facts = record["inputs"]["ds"][role]
        assert facts["path"] == str((dataset / "full_body_img").resolve()), facts
        assert facts["frame_list"] == str(ds.video)
    assert "frame_list" not in record["inputs"]["vid"]["video"] or record["inputs"]["vid"]["video"]["frame_list"] is None


def test_dataset_frames_out_of_order_would_not_match(dataset, fixtures_dir, tmp_path):
    """The tolerance above can fail: the same comparison with two frames swapped (what a lexicographic
    listing does to 2 and 10) falls below it."""
    frames = decode(fixtures_dir / "clip" / "talking_head.mkv", 11)
    mse = ((frames[2].astype(np.float64) - frames[10]) ** 2).mean()
    assert 10 * np.log10(255.0**2 / mse) < SAME_INPUT_PSNR_DB


def test_dataset_without_landmarks_is_one_line_and_exit_2(dataset, fixtures_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    (broken / "full_body_img").mkdir(parents=True)
    for i in range(3):
        (broken / "full_body_img" / f"{i}.jpg").write_bytes((dataset / "full_body_img" / f"{i}.jpg").read_bytes())
    (broken / "aud.wav").write_bytes((dataset / "aud.wav").read_bytes())
    suite = write_suite(tmp_path / "s.yaml", suite_data(fixtures_dir, [{"name": "ds", "dataset": str(broken)}]))
    assert main(["suite", "check", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"dataset {broken}: no landmarks/ folder (expected landmarks/0.lms ... one per frame)" in err


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: (d / "full_body_img" / "1.jpg").unlink(), "full_body_img/1.jpg is missing"),
    (lambda d: (d / "landmarks" / "2.lms").unlink(), "landmarks/2.lms is missing"),
    (lambda d: (d / "aud.wav").unlink(), "no aud.wav"),
])
def test_dataset_problems_name_what_is_missing(dataset, fixtures_dir, tmp_path, capsys, breakage, expected):
    copy = tmp_path / "copy"
    for sub in ("full_body_img", "landmarks"):
        (copy / sub).mkdir(parents=True)
        for i in range(4):
            src = dataset / sub / f"{i}.{'jpg' if sub == 'full_body_img' else 'lms'}"
            (copy / sub / src.name).write_bytes(src.read_bytes())
    (copy / "aud.wav").write_bytes((dataset / "aud.wav").read_bytes())
    breakage(copy)
    suite = write_suite(tmp_path / "s.yaml", suite_data(fixtures_dir, [{"name": "ds", "dataset": str(copy)}]))
    assert main(["suite", "check", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_dataset_excludes_video_and_box_sources(dataset, fixtures_dir, tmp_path, capsys):
    clip = fixtures_dir / "clip"
    suite = write_suite(tmp_path / "s.yaml", suite_data(fixtures_dir, [
        {"name": "ds", "dataset": str(dataset), "crop_boxes": str(clip / "crop_boxes.txt")}]))
    assert main(["suite", "check", str(suite)]) == 2
    assert "give either dataset or crop_boxes, not both" in capsys.readouterr().err


def test_check_dataset_rejects_unnumbered_frames(tmp_path):
    (tmp_path / "full_body_img").mkdir()
    cv2.imwrite(str(tmp_path / "full_body_img" / "frame_a.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="frame_a.jpg is not named by its frame number"):
        check_dataset(tmp_path)


def write_grey_folder(folder, levels, name=str):
    folder.mkdir()
    for i, level in enumerate(levels):
        cv2.imwrite(str(folder / f"{name(i)}.png"), np.full((16, 16, 3), level, np.uint8))


def test_fidelity_pairs_image_folders_in_natural_order(tmp_path, capsys):
    """Frame i of each folder encodes i as its grey level; names 0..120 unpadded in one folder, zero-padded
    in the other (a lexicographic listing would pair 10 with 2)."""
    n = 121
    write_grey_folder(tmp_path / "ref", [2 * i for i in range(n)])
    write_grey_folder(tmp_path / "same", [2 * i for i in range(n)], name=lambda i: f"{i:03d}")
    offsets = [1 + i % 3 for i in range(n)]  # frame i differs by 1, 2 or 3 grey levels
    write_grey_folder(tmp_path / "off", [2 * i + d for i, d in enumerate(offsets)])
    assert main(["metrics", "fidelity", "--reference", str(tmp_path / "ref"), "--candidate",
                 str(tmp_path / "same"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["frames"] == n and same["psnr_inf_frames"] == n and same["psnr"] == ["inf"] * n
    assert main(["metrics", "fidelity", "--reference", str(tmp_path / "ref"), "--candidate",
                 str(tmp_path / "off"), "--json"]) == 0
    off = json.loads(capsys.readouterr().out)
    expected = [10 * np.log10(255.0**2 / d**2) for d in offsets]
    # 1e-6 dB: float64 PSNR against the same float64 formula, so only rounding differs; pairing a frame with its
    # neighbour (another offset of 1..3 grey levels) moves it by 3.5 dB or more
    assert np.allclose(off["psnr"], expected, atol=1e-6)


def test_an_image_folder_is_a_video_and_a_ground_truth_in_numeric_order(fixtures_dir, tmp_path):
    """`video: DIR` and `ground_truth: DIR` read the images 0, 1, 2, ..., 10, ... losslessly (PNG), in order."""
    import cv2
    import yaml

    from evalkit.media.ffmpeg import probe_video
    from evalkit.config.suite import load_suite
    from tests.conftest import decode

    frames = decode(fixtures_dir / "clip" / "talking_head.mkv", 12)
    (tmp_path / "img").mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), frame[:, :, ::-1])
    clip = fixtures_dir / "clip"
    data = {"name": "images", "models": [{"name": "m", "generator": str(fixtures_dir / "models" / "reference.onnx"),
                                          "audio_encoder": str(fixtures_dir / "models" / "audio_encoder.onnx")}],
            "inputs": [{"name": "i", "video": str(tmp_path / "img"), "audio": str(clip / "speech.wav"),
                        "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(tmp_path / "img")}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    spec = load_suite(tmp_path / "s.yaml").suite.inputs[0]
    assert spec.video == spec.ground_truth and probe_video(spec.video).frames == 12
    assert (decode(spec.video) == frames).all()  # frame i is image i.png (10.png after 9.png), bit for bit
