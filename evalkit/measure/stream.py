"""What evalkit's streamed pass measures, handed to ``pipeline.generate`` by its caller.

``generate`` moves frames through its stages and calls these consumers with what it has in memory; it does
not import the measuring code (the pipeline sits below ``measure/``). Each consumer is fed from one stage
thread, in frame order:

- ``face``: the model's inner region against the ground truth's (regions inner and mouth), sync thumbnails;
- ``full``: the pasted-back full frame against the ground truth's (region full);
- ``field``: the field's metrics (CPBD, and LMD / identity with evalkit[face]; LPIPS, FID, FVD when the suite
  names their networks), from the same frames: no second pass over the run's files;

and, after the pass, ``viewer`` (output.mp4 decoded once, ``measure.outputs.measure_viewer_frames``) and
``result`` (the entry's measured parts).

What depends on the ground truth and the template alone is worked out once per process and reused by every
later run on the very same frames (``TRUTH_MEMO``: the models and backends of a suite on one input): the ground
truth's mouth track and its sync estimate per audio, its landmarks, the calibrated face rectangle (the template's
identity descriptors are remembered by ``metrics.face.FaceModels.descriptor`` itself). The key names the files (path, size, modification time), the frames compared, the
crop boxes each frame used and the contract, so a run on other frames never sees another's.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.config.suite import MetricsSpec
from evalkit.media.decode import frames_at
from evalkit.media.ffmpeg import VideoInfo, probe_video
from evalkit.measure.field import FieldMeasures
from evalkit.measure.outputs import FrameMeasures, aligned_frame_count, measure_viewer_frames, template_truth_note
from evalkit.files import same_file


TRUTH_MEMO_RUNS = 2  # ground truths remembered per process (one clip's: about 3 KB and 1 KB a frame)
TRUTH_MEMO: OrderedDict = OrderedDict()


def _file_key(path: Path) -> str:
    stat = os.stat(path)
    return f"{os.path.realpath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}"


def truth_key(template: VideoInfo, truth: VideoInfo | None, compared: int, boxes: np.ndarray,
              template_indices: list[int], contract: Contract) -> str:
    """What the truth side of a run depends on: the files, the frames compared, each frame's crop box, the
    contract."""
    digest = hashlib.sha256()
    digest.update(_file_key(template.path).encode())
    digest.update(_file_key(truth.path).encode() if truth is not None else b"-")
    used = np.asarray(template_indices[:compared], np.int64)
    digest.update(used.tobytes())
    digest.update(np.ascontiguousarray(np.asarray(boxes)[used], np.float64).tobytes())
    digest.update(contract.model_dump_json().encode())
    return f"{compared}:{digest.hexdigest()}"


class StreamMeasures:
    """The measuring consumers of one streamed pass (see the module's text)."""

    def __init__(self, contract: Contract, metrics: MetricsSpec, ground_truth: Path | None = None):
        self.contract, self.metrics = contract, metrics
        self.ground_truth = Path(ground_truth) if ground_truth is not None else None
        self.truth_info: VideoInfo | None = None
        self.compared = 0
        self.frames: FrameMeasures | None = None
        self.fields: FieldMeasures | None = None
        self._template: VideoInfo | None = None

    def begin(self, video: VideoInfo, frames: int, boxes: np.ndarray, template_indices: list[int]) -> int:
        """Before the pass: the template, the frames it drives and which template frame each re-draws. Returns
        how many frames are compared with the ground truth (all ``frames`` without one); raises UserError when
        the ground truth does not line up with the output."""
        self._template = video
        self.truth_info = probe_video(self.ground_truth) if self.ground_truth is not None else None
        self.compared = frames
        # the ground truth is the template itself, walked from its first frame: output frame i re-draws its frame i
        self._same = self.truth_info is not None and same_file(self.ground_truth, video.path)
        self._walks_truth = self._same and self.contract.template_start == 0
        if self.truth_info is not None:
            truth = self.truth_info
            self.compared = aligned_frame_count(self.ground_truth, truth.frames, (truth.width, truth.height),
                                                frames, (video.width, video.height), self.metrics.trim_to_shortest,
                                                self._walks_truth)
        self._key = truth_key(video, self.truth_info, self.compared, boxes, template_indices, self.contract)
        memo = TRUTH_MEMO.get(self._key)
        if memo is None:
            memo = {"truth_track": None, "truth_syncs": {}, "field": {}}
        self._memo = memo
        self.frames = FrameMeasures(self.contract, self.metrics, memo["truth_track"], memo["truth_syncs"])
        self.fields = FieldMeasures(self.compared, template_indices, boxes, lambda idx: frames_at(video, idx),
                                    self.contract, self.metrics, self.truth_info is not None, self._same,
                                    memo["field"])
        return self.compared

    @property
    def needs_full_frames(self) -> bool:
        """Whether ``field`` reads the pasted-back full frame."""
        return self.fields is not None and self.fields.needs_full_frames

    def face(self, inner: np.ndarray, truth_inner: np.ndarray | None) -> None:
        self.frames.add_face(inner, truth_inner)

    def full(self, full: np.ndarray, truth: np.ndarray) -> None:
        self.frames.add_full(full, truth)

    def field(self, i: int, inner: np.ndarray, template_frame: np.ndarray, template_inner: np.ndarray,
              full: np.ndarray, truth: np.ndarray | None) -> None:
        if i < self.compared:
            self.fields.add(i, inner, template_frame, template_inner, full, truth)

    def viewer(self, mp4: Path, side_by_side: Path | None, audio: Path | None,
               window: tuple[int, int, int, int]) -> None:
        """After the pass, with a ground truth: the viewer's picture (region mp4_face or mp4_full)."""
        if self.truth_info is not None:
            measure_viewer_frames(self.frames, mp4, self.ground_truth, self.compared, side_by_side=side_by_side,
                                  audio=audio, window=window)

    def result(self, wav: np.ndarray, sample_rate: int) -> dict:
        """The entry's measured parts: fidelity, sync, video lag, SyncNet (``FrameMeasures.result``), ``field``."""
        measured = self.frames.result(wav, sample_rate, self.truth_info is not None)
        note = (template_truth_note(self.ground_truth, self.truth_info.frames, self.compared) if self._walks_truth
                else None)
        if note:
            measured["ground_truth_note"] = note
        measured["field"] = self.fields.result(wav, (self._template.width, self._template.height),
                                               measured.get("sync"))
        if self.truth_info is not None and self._memo["truth_track"] is None:
            self._memo["truth_track"] = self.frames.tracks["ground_truth"]  # complete: the pass has ended
        TRUTH_MEMO[self._key] = self._memo
        TRUTH_MEMO.move_to_end(self._key)
        while len(TRUTH_MEMO) > TRUTH_MEMO_RUNS:
            TRUTH_MEMO.popitem(last=False)
        return measured
