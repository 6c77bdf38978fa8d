"""A run folder moved to another machine still renders whole: the views read only the folder."""

from __future__ import annotations

import json
import re
import shutil

from evalkit.cli import main
from evalkit.media.ffmpeg import probe_video
from evalkit.record.layout import RUN_RECORD, SIDE_BY_SIDE, WORST_FRAMES_JSON
from evalkit.record.summary import load_run, run_label


def _unreachable(value, key=None):
    """The record with every file path it names pointing nowhere (the machine that ran it is far away)."""
    if isinstance(value, dict):
        return {k: _unreachable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_unreachable(v) for v in value]
    if key in ("path", "landmarks") and isinstance(value, str):
        return "/nonexistent/elsewhere/" + value.rsplit("/", 1)[-1]
    return value


def test_report_of_a_moved_run_keeps_worst_frames_and_side_by_side(demo_run, tmp_path, capsys):
    moved = tmp_path / "another-machine" / demo_run.name
    shutil.copytree(demo_run, moved, ignore=shutil.ignore_patterns("*.mkv", "report.html"))  # frames stay home too
    record = json.loads((moved / RUN_RECORD).read_text())
    (moved / RUN_RECORD).write_text(json.dumps(_unreachable(record)))
    measured = [e for e in load_run(moved).runs if e.fidelity]
    assert measured and all((moved / e.folder / WORST_FRAMES_JSON).is_file() for e in measured)

    assert main(["report", str(moved)]) == 0
    capsys.readouterr()
    html = (moved / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 4 * len(measured)
    assert "Worst frames not shown" not in html and "not on this machine" not in html
    sources = re.findall(r'<video[^>]*\ssrc="([^"]+)"', html)
    assert {f"{e.folder}/{SIDE_BY_SIDE}" for e in measured} <= set(sources)


def test_worst_frames_crop_the_truth_with_the_runs_own_template_walk(demo_run, tmp_path, monkeypatch):
    """The ground truth's frame i is cut with the box of the template frame the run re-drew for frame i (the
    entry's template_indices), not with a template walk guessed again (it differs under other protocols)."""
    import numpy as np

    import evalkit.measure.view_assets as view_assets

    record = load_run(demo_run)
    entry = next(e for e in record.runs if e.fidelity)
    folder = tmp_path / entry.folder
    folder.mkdir()
    shutil.copy2(demo_run / entry.folder / "frames_inner.mkv", folder)
    frames = entry.frames
    entry = entry.model_copy(update={"template_indices": [(7 * i + 3) % frames for i in range(frames)]})  # any walk
    used = {}

    class RecordingCropper:
        def __init__(self, contract):
            pass

        def crop_frame(self, frame, box):
            used[len(used)] = int(box[0])
            return frame

    monkeypatch.setattr(view_assets, "CropPreparer", RecordingCropper)
    monkeypatch.setattr(view_assets, "difference_strip_jpeg", lambda reference, output, amplify: b"jpeg")
    boxes = np.repeat(np.arange(frames)[:, None], 4, axis=1)  # box k says k
    truth = record.inputs[entry.input].ground_truth.path
    saved = json.loads(view_assets.save_worst_frames(folder, record, entry, truth, boxes).read_text())
    picked = sorted(f["frame"] for f in saved["frames"])
    assert list(used.values()) == [entry.template_indices[i] for i in picked]


def test_view_assets_whose_inputs_went_away_are_skipped_with_a_message(demo_run, tmp_path):
    """At the end of a run the driver makes each combination's worst frames from the ground truth and crop boxes
    on its own disk; an input gone by then (a landmark folder, an image folder read as the ground truth) costs
    those pictures and says so, never the finished run (a Ray test once lost its run to a UserError here)."""
    from evalkit.measure.view_assets import make_view_assets

    record = load_run(demo_run)
    entry = next(e for e in record.runs if e.fidelity)
    (tmp_path / entry.folder).mkdir()
    shutil.copy2(demo_run / entry.folder / "frames_inner.mkv", tmp_path / entry.folder)
    (tmp_path / entry.folder / SIDE_BY_SIDE).write_bytes(b"made by the task")
    facts = record.inputs[entry.input]
    one = record.model_copy(update={"runs": [entry]})
    gone = tmp_path / "gone"
    lines = []
    facts.crop_boxes = None
    facts.landmarks = {"path": str(gone / "landmarks"), "sha256": "0" * 64}
    make_view_assets(tmp_path, one, log=lines.append)
    assert len(lines) == 1 and "cannot read the crop boxes" in lines[0] and "no worst frames" in lines[0], lines
    assert not (tmp_path / entry.folder / WORST_FRAMES_JSON).exists()
    # without the boxes a missing side-by-side video is still made, of whole frames, and the line says so
    (tmp_path / entry.folder / SIDE_BY_SIDE).unlink()
    shutil.copy2(demo_run / entry.folder / "output.mp4", tmp_path / entry.folder)
    lines.clear()
    make_view_assets(tmp_path, one, log=lines.append)
    assert len(lines) == 1 and lines[0].endswith("no worst frames, and a side-by-side video of whole frames"), lines
    assert probe_video(tmp_path / entry.folder / SIDE_BY_SIDE).width == 2 * facts.size[0]
    (tmp_path / entry.folder / SIDE_BY_SIDE).write_bytes(b"made by the task")
    truth = facts.ground_truth
    facts.ground_truth = dict(truth.model_dump(), path=str(gone / "full_body_img"), frame_list=truth.path)  # list kept
    lines.clear()
    make_view_assets(tmp_path, one, log=lines.append)
    assert lines == [f"{run_label(entry)}: the ground truth {gone / 'full_body_img'} is not on this machine: no "
                     f"{WORST_FRAMES_JSON}"], lines


def test_a_side_by_side_made_after_the_run_shows_the_same_face_window(demo_run, tmp_path):
    """An external backend's side-by-side video is made at the end of the run, through ffmpeg, from the files;
    evalkit's own pipeline writes it during the viewer pass. Both show the same window around the face."""
    import numpy as np

    from evalkit.measure.view_assets import make_view_assets
    from tests.conftest import decode

    record = load_run(demo_run)
    entry = next(e for e in record.runs if e.fidelity and e.model == "noisy")
    folder = tmp_path / entry.folder
    folder.mkdir()
    for name in ("output.mp4", WORST_FRAMES_JSON):
        shutil.copy2(demo_run / entry.folder / name, folder)
    lines = []
    make_view_assets(tmp_path, record.model_copy(update={"runs": [entry]}), log=lines.append)
    assert lines == []
    made, streamed = probe_video(folder / SIDE_BY_SIDE), probe_video(demo_run / entry.folder / SIDE_BY_SIDE)
    width, height = record.inputs[entry.input].size
    assert (made.width, made.height, made.frames) == (streamed.width, streamed.height, streamed.frames)
    assert made.width < 2 * width and made.height <= height and made.has_audio
    a, b = decode(folder / SIDE_BY_SIDE, 20).astype(np.float64), decode(demo_run / entry.folder / SIDE_BY_SIDE, 20)
    assert 10 * np.log10(255**2 / np.mean((a - b) ** 2)) > 30  # the same pictures, encoded apart
