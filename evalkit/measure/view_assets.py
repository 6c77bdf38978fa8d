"""What the report shows that needs files outside the run folder, made into the run folder when it is recorded.

The worst frames show the ground truth cropped with the run's boxes, and the
side-by-side video shows the ground truth beside the output: both read the
original input files. They are made here, while those files are at hand (just
before the report is first rendered), and saved in each combination's folder
(``record.layout``: ``worst_frames.json`` with one JPEG per frame,
``side_by_side.mp4``), so that ``evalkit report`` on a run folder moved to
another machine reads only the folder. What is already there is kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.errors import UserError
from evalkit.media.decode import FrameReader, ping_pong_index
from evalkit.media.ffmpeg import probe_video
from evalkit.media.frames import face_window
from evalkit.media.side_by_side import side_by_side
from evalkit.media.thumbnails import DIFF_AMPLIFY, WORST_FRAMES, WORST_MIN_GAP_SECONDS, difference_strip_jpeg, distinct_worst
from evalkit.pipeline.crop import CropPreparer, load_crop_boxes, load_landmark_boxes
from evalkit.record.io import write_bytes_atomic, write_json_atomic
from evalkit.record.layout import FRAMES_INNER, OUTPUT_MP4, SIDE_BY_SIDE, WORST_FRAMES_JSON, worst_frame_jpeg
from evalkit.record.summary import json_safe, number, run_label


def make_view_assets(run_dir: Path, record, log=print) -> None:
    """For each finished combination with a ground truth: its worst-frame thumbnails and side-by-side video,
    unless the folder has them already. Where the ground truth (or crop boxes) is not on this machine, says so
    and makes nothing (the report then says what is missing)."""
    run_dir = Path(run_dir)
    for entry in record.runs:
        if entry.status != "ok" or not entry.fidelity:
            continue
        folder = run_dir / entry.folder
        facts = record.inputs[entry.input].ground_truth
        truth = Path(facts.frame_list or facts.path)  # an image folder is read through its frame list
        missing = [p for p in (folder / WORST_FRAMES_JSON, folder / SIDE_BY_SIDE) if not p.is_file()]
        if not missing:
            continue
        if not (truth.is_file() and Path(facts.path).exists()):  # an image folder: the list and the images
            log(f"{run_label(entry)}: the ground truth {facts.path} is not on this machine: no "
                + " or ".join(p.name for p in missing))
            continue
        try:
            boxes = input_boxes(record, entry)
        except (OSError, UserError) as exc:  # the crop boxes or landmarks are not on this machine (any more)
            boxes = None
            log(f"{run_label(entry)}: cannot read the crop boxes ({exc}): no worst frames"
                + (", and a side-by-side video of whole frames" if folder / SIDE_BY_SIDE in missing else ""))
        if folder / SIDE_BY_SIDE in missing and (folder / OUTPUT_MP4).is_file():
            window = None if boxes is None else face_window_of(record, entry, boxes)
            side_by_side(truth, folder / OUTPUT_MP4, folder / SIDE_BY_SIDE, entry.frames, window=window)
        if folder / WORST_FRAMES_JSON in missing and (folder / FRAMES_INNER).is_file() and boxes is not None:
            save_worst_frames(folder, record, entry, truth, boxes)


def template_walk(record, entry) -> list[int]:
    """The template frame each of the entry's output frames re-drew: its ``template_indices`` (the run's own walk,
    protocols and template_start included), or, in a record without them (older external runs), the template
    walked forwards and backwards from its start."""
    if entry.template_indices is not None:
        return entry.template_indices
    return [ping_pong_index(i, record.inputs[entry.input].video_frames) for i in range(entry.frames)]


def face_window_of(record, entry, boxes: np.ndarray) -> tuple[int, int, int, int]:
    """The side-by-side video's window: every box the entry's frames were cropped with, and a margin."""
    width, height = record.inputs[entry.input].size
    return face_window(boxes[template_walk(record, entry)[: entry.frames]], width, height)


def input_boxes(record, entry) -> np.ndarray:
    """The crop boxes of an entry's input, from the files the run read."""
    facts = record.inputs[entry.input]
    contract = Contract(**record.models[entry.model].contract)
    if facts.crop_boxes:
        return load_crop_boxes(Path(facts.crop_boxes.path))
    landmarks = facts.landmarks  # the folder's facts (a path alone in records before its hash was kept)
    return load_landmark_boxes(Path(landmarks if isinstance(landmarks, str) else landmarks.path), contract)


def save_worst_frames(folder: Path, record, entry, truth: Path, boxes: np.ndarray) -> Path:
    """The WORST_FRAMES distinct frames of lowest inner-region PSNR as JPEG strips (ground truth | output |
    |difference| x DIFF_AMPLIFY) and ``worst_frames.json`` listing them; returns the JSON's path.

    The ground truth's frame i is cropped with the box of the template frame output frame i re-drew
    (``template_walk``)."""
    facts = record.inputs[entry.input]
    psnr = np.array(entry.fidelity["inner"].psnr, dtype=np.float64)
    min_gap = max(1, round(WORST_MIN_GAP_SECONDS * facts.fps))
    order = distinct_worst(psnr, WORST_FRAMES, min_gap)
    walk = template_walk(record, entry)
    contract = Contract(**record.models[entry.model].contract)
    cropper = CropPreparer(contract)
    gt_info, out_info = probe_video(truth), probe_video(folder / FRAMES_INNER)
    gt = np.empty((gt_info.height, gt_info.width, 3), np.uint8)
    out = np.empty((out_info.height, out_info.width, 3), np.uint8)
    frames = []
    wanted = set(order)
    with FrameReader(gt_info) as gt_reader, FrameReader(out_info) as out_reader:
        for i in range(max(order) + 1 if order else 0):
            gt_reader.read_into(gt)
            out_reader.read_into(out)
            if i in wanted:
                reference = cropper.crop_frame(gt, boxes[walk[i]]).copy()
                write_bytes_atomic(folder / worst_frame_jpeg(i), difference_strip_jpeg(reference, out.copy(),
                                                                                         DIFF_AMPLIFY))
    for i in order:
        frames.append({"frame": i, "psnr": float(psnr[i]), "jpeg": worst_frame_jpeg(i)})
    return write_json_atomic(folder / WORST_FRAMES_JSON, json_safe({
        "count": WORST_FRAMES, "min_gap_frames": min_gap, "amplify": DIFF_AMPLIFY, "region": "inner",
        "frames": frames}))

