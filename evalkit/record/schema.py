"""The run record (``run.json``), typed: what evalkit writes, checked when written and when read.

``RunRecord`` is the whole record, ``RunEntry`` one model x backend x input x
protocol (a "combination"). The record carries its own schema version,
``RECORD_SCHEMA_VERSION``, a series of its own (not the suite's): a reader
checks it, and ``migrate`` brings every older version to today's, one step
at a time (``MIGRATIONS``), so an old run folder still loads.

Versions:

- 1: written by evalkit before the record had its own version (it borrowed
  the suite's ``schema_version``, 1). Entries may lack ``protocol`` (they
  predate protocols: the default reconstruction), a sync estimate may lack
  ``reliable`` (it predates reliability: reliable when it had a signal), a
  record may lack ``parity``; keys that older code wrote and today's does not
  are dropped. (Old speed names in summaries, ``fps``, ..., are renamed in
  records of every version.)
- 2: every key a view reads exists (optional parts are null).
- 3: An image folder read as a video (a dataset's frames) is recorded as that folder, with
  ``frame_list`` naming the list evalkit read it through (version 2 recorded only the list, in evalkit's
  cache, as the path). Nothing to fill in: a version-2 record is a version-3 record.
- 4: Each entry has its ``verdict`` (record.verdict: "ok" or what is wrong with the run, with the
  numbers), ``timed_cpu_ms`` (the CPU time of each timed inference, beside ``timed_ms``) and ``timing_load``
  (what other processes used of the machine while timing); a gate result says whether it was ``inconclusive``
  (a relative speed gate on noisy timing) and which ``clock`` it judged; the record its ``wall_seconds``
  (JUnit's time, to the millisecond: ``finished_utc`` has whole seconds). A version-3 record is given its
  verdicts from its summaries and gates (no CPU times: they were not measured).
- 5: parity stored once. The record's ``parity`` holds every comparison; the one of a candidate against its
  parity baseline backend (what its summary row shows) is marked ``baseline``. Version 4 also copied that one
  into the candidate's entry (``runs[i].parity``): the migration marks it in the list and drops the copy. An
  entry's ``summary`` and ``golden`` are typed parts (``record.summary.Summary``, ``Golden``); the JSON of
  both is what version 4 wrote.
- 6: the viewer's picture measured as issue 24 defined it. SSIM of region mp4_face / mp4_full is of the
  picture's block means at ``viewer.ssim_scale`` (``metrics.fidelity.viewing_scale``: 1 below 384 pixels on
  the window's shorter side, so the 640x480 fixture's numbers are unchanged; 3 for a 1440x1080 video's face
  window); output.mp4 is encoded by x264 on one thread (``mp4_encoding.threads``: the same bytes on every
  machine; x264's own choice by the machine's cores before). Older records state scale 1 and threads null
  ("x264's default"), and a relative gate on an mp4 column refuses a baseline of another definition.

Non-finite floats are stored as the strings "inf", "-inf", "nan" (JSON has
none): a ``Real`` field reads them back as floats and writes them as those
strings, so the PSNR of identical frames round-trips. Parts that evalkit
writes are ``extra="forbid"``: a misspelt key is an error when the record is
validated before it is written (``run.py``), not a silently missing column.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Literal

from pydantic import ConfigDict, Field

from evalkit.record.parts import Real, RecordPart  # noqa: F401 (re-exported)
from evalkit.record.runkey import RunKey
from evalkit.record.summary_row import Summary
from evalkit.record.vocabulary import DEFAULT_PROTOCOL  # also what a record from before protocols ran
from evalkit.record.vocabulary import RUN_STATUSES, SPEED_ALIASES

RECORD_KIND = "evalkit.run"
RECORD_SCHEMA_VERSION = 6


# --- facts about the files a run used ---------------------------------------------------------------------------

class FileFacts(RecordPart):
    """A file the run read: where it was on the machine that ran it, and its SHA-256 (what identifies it)."""

    path: str
    sha256: str
    frame_list: str | None = None  # an image folder read as a video (path): the list evalkit read it through


class SuiteFacts(RecordPart):
    name: str
    path: str
    sha256: str
    definition: dict[str, Any]  # the validated suite (config.suite.Suite.model_dump(mode="json"))


class ModelFacts(RecordPart):
    generator: FileFacts | None
    audio_encoder: FileFacts | None = None
    audio_features: FileFacts | None = None
    contract: dict[str, Any]  # config.contract.Contract.model_dump(mode="json")


class InputFacts(RecordPart):
    video: FileFacts | None
    audio: FileFacts | None
    crop_boxes: FileFacts | None = None
    landmarks: FileFacts | str | None = None  # the folder and its files' hash (a path alone in older records)
    ground_truth: FileFacts | None = None
    video_frames: int
    fps: float
    size: list[int]  # [width, height]


# --- what was measured ----------------------------------------------------------------------------------------

class Sync(RecordPart):
    """A sync estimate (metrics.sync.SyncResult): offset in frames (+ = mouth after sound) and its curve."""

    offset_frames: int | None
    offset_ms: Real | None
    confidence: Real
    fps: float
    no_signal: bool
    reliable: bool
    reason: str | None = ""
    peak_frames: Real | None = None
    lags: list[int] = []
    curve: list[Real] = []


class SyncNet(RecordPart):
    lse_d: Real
    lse_c: Real
    offset_frames: int
    lags: list[int]
    curve: list[Real]


class Histogram(RecordPart):
    low: float
    high: float
    counts: list[int]
    below: int
    above: int


class OutputStats(RecordPart):
    """Statistics of the raw model outputs, before x255 (metrics.output_stats)."""

    count: int
    mean: Real
    std: Real
    min: Real
    max: Real
    p1: Real
    p50: Real
    p99: Real
    fraction_outside_0_1: Real
    nan_count: int
    inf_count: int
    wrap_count: int | None = None
    histogram: Histogram | None = None


class Copy(RecordPart):
    """Copy detection: per-frame mouth MSE against the unmasked reference channels, and the flag's threshold."""

    mouth_mse: list[Real]
    psnr_db: float


class MouthSharpness(RecordPart):
    output: Real
    template: Real


class FaceField(RecordPart):
    """The field's face metrics of a run (measure.field, with evalkit[face]): per-frame LMD (pixels of the full frame,
    ``lmd_unit``), mouth opening from landmarks, identity distances on ``identity_frames``, the landmark sync."""

    rect_from: str
    rect_relation: list[float]
    lmd_mouth: list[Real]
    lmd_all: list[Real]
    lmd_unit: str
    opening: list[Real]
    ground_truth_opening: list[Real]
    identity_frames: list[int]
    identity_template: list[Real]
    identity_ground_truth: list[Real]
    sync: Sync
    ground_truth_sync: Sync | None
    agrees_with_builtin: bool | None


class FieldMetrics(RecordPart):
    """The field's own metrics of a run (measure.field.measure_field): CPBD of the mouth on ``cpbd_frames``, the face
    metrics (None where evalkit[face] is missing: ``face_missing`` says how to get it), LPIPS per frame, FID and FVD
    with their sample counts (each None unless the suite names its network)."""

    face_missing: str | None
    face: FaceField | None
    cpbd_frames: list[int]
    cpbd_mouth: list[Real]
    cpbd_mouth_template: list[Real]
    lpips: dict[str, Any] | None = None  # {values: [...], region}
    fid: dict[str, Any] | None = None  # {value, samples, region}
    fvd: dict[str, Any] | None = None  # {value, clips, clip_frames, region}


class RegionSeries(RecordPart):
    """Per-frame PSNR (dB; inf for identical frames) and SSIM of one region."""

    psnr: list[Real]
    ssim: list[Real]


class Outputs(RecordPart):
    """The generated files, relative to the run folder."""

    mp4: str
    frames_full: str | None = None  # kept only with suite store_full_frames (and by external backends)
    frames_inner: str


class Threads(RecordPart):
    intra_op: int | None
    inter_op: int | None


class ParityComparison(RecordPart):
    """One backend against another (measure.parity.compare_entries). ``tensor`` and ``picture`` keep the
    statistics as written (metrics.parity.ParityResult, measure.parity.picture_parity)."""

    reference: str
    candidate: str
    precision: str
    atol: float
    rtol: float
    passed: bool
    tensor: dict[str, Any] | None
    tensor_note: str | None = None
    picture: dict[str, Any]
    baseline: bool = False  # the candidate against its parity baseline backend: what its summary row shows

    @property
    def candidate_key(self) -> RunKey:
        return RunKey.parse(self.candidate)


class Golden(RecordPart):
    """A run's raw outputs against the suite's golden set (measure.parity.compare_with_golden): the tensor
    statistics (metrics.parity.ParityResult) and what was compared, or only ``passed`` false and a ``note``
    when nothing could be (the set has no such run, the shapes differ)."""

    passed: bool
    note: str | None = None
    atol: float | None = None
    rtol: float | None = None
    elements: int | None = None
    failing_elements: int | None = None
    nan_mismatches: int | None = None
    max_abs: Real | None = None
    mean_abs: Real | None = None
    median_abs: Real | None = None
    p99_abs: Real | None = None
    max_rel: Real | None = None
    mean_rel: Real | None = None
    median_rel: Real | None = None
    p99_rel: Real | None = None
    required_atol: Real | None = None
    required_rtol: Real | None = None
    frames: int | None = None
    golden_backend: str | None = None
    same_model_file: bool | None = None
    same_input_tensors: bool | None = None


class GateRecord(RecordPart):
    """One gate's verdict on one combination (ci.gates.GateResult). ``inconclusive``: a relative speed gate that
    could not judge, the run's timing being noisy (it does not fail the run; ``passed`` is then true)."""

    gate: str
    field: str
    model: str
    backend: str
    input: str
    value: Real | None
    limit: str
    baseline_value: Real | None
    passed: bool
    message: str
    protocol: str = DEFAULT_PROTOCOL
    inconclusive: bool = False
    clock: Literal["cpu", "wall"] | None = None  # a speed gate's clock
    seconds: float | None = None  # the time the gate's evaluation took


class BaselineFacts(RecordPart):
    run_id: str
    suite: str
    machine: dict[str, Any]


class Finding(RecordPart):
    """One thing a verdict found: a short word ("near-copy", "sync late", ...) and the numbers that decided it."""

    kind: str
    detail: str


class Verdict(RecordPart):
    """A run's verdict (record.verdict.run_verdict): ``status`` "ok", "flagged", "skipped" or "failed"."""

    status: Literal["ok", "flagged", "skipped", "failed"]
    ok: bool
    findings: list[Finding]
    text: str


class TimingLoad(RecordPart):
    """The machine beside the latency pass (pipeline.latency.machine_load)."""

    others_share: float | None
    loadavg_1m: float | None
    cpus: int


class Viewer(RecordPart):
    """What the viewer pass measured: region ``mp4_face`` (the face ``window``, x0 y0 x1 y1) or ``mp4_full``."""

    region: Literal["mp4_face", "mp4_full"]
    window: list[int] | None = None
    ssim_scale: int = Field(1, ge=1, description="SSIM of the picture's block means at this factor "
                            "(metrics.fidelity.viewing_scale; schema 6); PSNR is of the picture's pixels")


class Mp4Encoding(RecordPart):
    """How evalkit encoded output.mp4 (the suite's ``mp4``): x264's preset and CRF, and its threads."""

    preset: str
    crf: int
    threads: int | None = Field(None, description="x264's threads (1 since schema 6: the same bytes on every "
                                "machine); null: x264's default, by the machine's cores (older records)")


class RunEntry(RecordPart):
    """One model x backend x input x protocol: who it is, whether it ran, and everything measured.

    ``status``: "ok" (ran; ``folder`` and ``frames`` are set), "skipped" (cannot run here, ``reason`` says
    why) or "failed" (``reason``, and ``errors`` / ``traceback`` as free text). Parts a run did not produce
    (no ground truth: no ``fidelity``; an external backend: no ``stage_seconds``) are null.
    """

    # identity
    model: str
    backend: str
    input: str
    protocol: str
    protocol_kind: str
    reference_frames: str
    kind: str  # the backend's kind: "onnxruntime" or "external"
    provider: str | None = None
    precision: str
    driving_audio: str | None = None
    # outcome
    status: Literal[RUN_STATUSES]
    reason: str | None = None
    errors: str | None = None
    traceback: str | None = None
    folder: str | None = None
    outputs: Outputs | None = None
    frames: int | None = None
    # timings (seconds, except *_ms)
    audio_features_seconds: float | None = None
    audio_seconds: float | None = None
    generate_seconds: float | None = None
    providers_used: list[str] | None = None
    session_seconds: float | None = None
    threads: Threads | None = None
    stage_seconds: dict[str, float] | None = None
    # CPU seconds by stage: the stage threads' own (time.thread_time), the viewer pass's, sync's and the latency
    # pass's (time.process_time); ffmpeg's processes not included
    stage_cpu_seconds: dict[str, float] | None = None
    inference_ms: list[float] | None = None
    warmup_ms: list[float] | None = None
    first_inference_ms: float | None = None
    timed_ms: list[float] | None = None
    timed_seconds: float | None = None
    timed_cpu_ms: list[float] | None = None  # process CPU ms of each timed inference, beside timed_ms
    timing_load: TimingLoad | None = None
    pipeline_seconds: float | None = None  # the streamed pass's wall clock (its stages overlap)
    batch_timed_ms: dict[str, list[float]] | None = None
    copy_ms: dict[str, list[float]] | None = None
    command_seconds: float | None = None
    external_timings: dict[str, Any] | None = None
    # what the generator produced and was given
    head_inputs_sha256: str | None = None
    template_indices: list[int] | None = None  # the template frame output frame i re-drew
    output_stats: OutputStats | None = None
    copy_: Copy | None = Field(None, alias="copy")
    mouth_sharpness: MouthSharpness | None = None
    # measured against the ground truth and the audio
    compared_frames: int | None = None
    ground_truth_note: str | None = None  # what of the ground truth was compared, when not all of it
    fidelity: dict[str, RegionSeries] | None = None
    viewer: Viewer | None = None  # the viewer pass's region (schema 5; older records: mp4_full)
    mp4_encoding: Mp4Encoding | None = None  # evalkit's own pipeline only (schema 5; older records: veryfast, 18)
    sync: Sync | None = None
    ground_truth_sync: Sync | None = None
    video_lag: Sync | None = None  # the output's mouth motion against the ground truth's (metrics.sync.video_lag)
    syncnet: SyncNet | None = None
    field: FieldMetrics | None = None  # the field's own metrics: CPBD, LMD, identity, LPIPS, FID, FVD
    # compared with the golden set (a run's parity with other backends is the record's ``parity``)
    golden: Golden | None = None
    # the summary.csv row (record.summary.summary_row; an entry assembled before it is recorded holds an empty one)
    summary: Summary
    verdict: Verdict | None = None  # record.verdict; every record of version 4 has one per entry

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    @property
    def key(self) -> RunKey:
        """model x backend x input x protocol: what identifies this run (``record.runkey.RunKey``)."""
        return RunKey(self.model, self.backend, self.input, self.protocol)


class RunRecord(RecordPart):
    """The whole record of one run folder."""

    kind: Literal[RECORD_KIND] = RECORD_KIND
    schema_version: Literal[RECORD_SCHEMA_VERSION] = RECORD_SCHEMA_VERSION
    run_id: str
    created_utc: str
    finished_utc: str | None = None
    wall_seconds: float | None = None  # this process's time from its first combination to finished_utc (precise)
    suite: SuiteFacts
    machine: dict[str, Any]
    versions: dict[str, Any]
    available_providers: list[str]
    models: dict[str, ModelFacts]
    inputs: dict[str, InputFacts]
    runs: list[RunEntry]
    parity: list[ParityComparison] = []
    gates: list[GateRecord] | None = None  # None: the suite has no gates
    gates_passed: bool | None = None
    baseline: BaselineFacts | None = None  # the baseline a gate compared with

    def baseline_parity(self, entry: RunEntry) -> ParityComparison | None:
        """``entry``'s comparison with its parity baseline backend (the one its summary row shows), if any."""
        key = entry.key
        return next((p for p in self.parity if p.baseline and p.candidate_key == key), None)

    def to_json_dict(self) -> dict:
        """The record as JSON values (non-finite floats as strings): what ``run.json`` holds, every key present."""
        return self.model_dump(mode="json", by_alias=True)


# --- versions and migrations -----------------------------------------------------------------------------------

def _v1_to_v2(record: dict) -> dict:
    """Version 1 (the suite's schema_version, borrowed) to 2: fill what older code did not write."""
    record = dict(record, schema_version=2)
    record.setdefault("parity", [])
    runs = []
    for entry in record.get("runs") or []:
        if not isinstance(entry, dict):
            runs.append(entry)  # validation says what is wrong with it
            continue
        entry = dict(entry)
        entry.setdefault("protocol", DEFAULT_PROTOCOL)
        entry.setdefault("protocol_kind", "reconstruction")
        entry.setdefault("reference_frames", "same")
        for key in ("sync", "ground_truth_sync"):
            sync = entry.get(key)
            if isinstance(sync, dict) and "reliable" not in sync:
                entry[key] = dict(sync, reliable=not sync.get("no_signal", True))
        runs.append(entry)
    if isinstance(record.get("runs"), list):
        record["runs"] = runs
    return record


def _speed_names_of_today(record: dict) -> dict:
    """Summaries with old speed names (``fps``, ...: ``record.vocabulary.SPEED_ALIASES``) renamed to today's.

    Applied to every record read, whatever its version: a summary is a free-form row, and records of version 1
    and 2 alike were edited by hand or by tools that kept the old names."""
    for entry in record.get("runs") if isinstance(record.get("runs"), list) else []:
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if isinstance(summary, dict) and any(old in summary for old in SPEED_ALIASES):
            summary = dict(summary)
            for old, new in SPEED_ALIASES.items():
                if old in summary and new not in summary:
                    summary[new] = summary.pop(old)
            entry["summary"] = summary
    return record


def _v2_to_v3(record: dict) -> dict:
    """Version 2 to 3: only the number (``FileFacts.frame_list`` is new and optional)."""
    return dict(record, schema_version=3)


def _v3_to_v4(record: dict) -> dict:
    """Version 3 to 4: only the number here; each entry is given its verdict (record.verdict), from its summary
    and the gates, once the record is validated (``validate_record``)."""
    return dict(record, schema_version=4)


def _v4_to_v5(record: dict) -> dict:
    """Version 4 to 5: parity kept once, in the record's ``parity``. Version 4 also kept each candidate's
    comparison with its baseline backend in its entry (``runs[i].parity``): that comparison is marked
    ``baseline`` in the record's list (added to it if only the entry had it), and the entry's copy dropped."""
    record = _v4_viewer(dict(record, schema_version=5))
    runs, parity = record.get("runs"), record.get("parity")
    if not (isinstance(runs, list) and isinstance(parity, list)):
        return record  # a damaged record: validation says what is wrong with it
    parity = [dict(p) if isinstance(p, dict) else p for p in parity]
    new_runs = []
    for entry in runs:
        if isinstance(entry, dict) and "parity" in entry:
            entry = dict(entry)
            own = entry.pop("parity")
            if isinstance(own, dict):
                same = next((p for p in parity if isinstance(p, dict) and p.get("reference") == own.get("reference")
                             and p.get("candidate") == own.get("candidate")), None)
                if same is None:
                    parity.append(dict(own, baseline=True))
                else:
                    same["baseline"] = True
        new_runs.append(entry)
    record["runs"], record["parity"] = new_runs, parity
    return record


def _v4_viewer(record: dict) -> dict:
    """Version 4 to 5, also: the viewer's region and output.mp4's encoding recorded. Before 5 every viewer pass
    measured
    the whole frame (mp4_full) and evalkit encoded output.mp4 with x264's veryfast preset at CRF 18; both are
    stated for the entries that had them, so a comparison with a newer run can tell the definitions apart."""
    record = dict(record, schema_version=5)
    if isinstance(record.get("runs"), list):
        runs = []
        for e in record["runs"]:
            if isinstance(e, dict):
                e = dict(e)
                if isinstance(e.get("fidelity"), dict) and "mp4_full" in e["fidelity"]:
                    e.setdefault("viewer", {"region": "mp4_full", "window": None})
                if e.get("status") == "ok" and e.get("kind") == "onnxruntime":
                    e.setdefault("mp4_encoding", {"preset": "veryfast", "crf": 18})
            runs.append(e)
        record["runs"] = runs
    return record


def _v5_to_v6(record: dict) -> dict:
    """Version 5 to 6: nothing to fill (a version-5 viewer is scale 1, its encoding x264's default threads: the
    parts' defaults); the number says which definitions of the mp4 columns the record holds."""
    return dict(record, schema_version=6)


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5,
                                                 5: _v5_to_v6}
"""``MIGRATIONS[n]`` brings a version-n record to version n + 1."""
KNOWN_SCHEMA_VERSIONS = (*MIGRATIONS, RECORD_SCHEMA_VERSION)


def migrate(record: dict) -> dict:
    """``record`` (a dict of any known version) brought to ``RECORD_SCHEMA_VERSION``; raises ValueError for an
    unknown version."""
    version = record.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        raise ValueError(f"schema_version {version!r} is not one this evalkit reads "
                         f"({', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); upgrade evalkit to read it")
    while version != RECORD_SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version = record["schema_version"]
    return record


def validate_record(record: dict) -> RunRecord:
    """``record`` (a dict of any known version, as read from JSON) as a RunRecord of today's version.

    Raises ValueError (unknown version) or pydantic.ValidationError (a key missing, of the wrong type, or unknown
    in a record of today's version)."""
    version = record.get("schema_version")
    migrated = _speed_names_of_today(migrate(record))
    typed = RunRecord.model_validate(migrated, context={"migrating": version != RECORD_SCHEMA_VERSION})
    if version in (1, 2, 3):  # before verdicts: each entry given its own, from its summary and the gates
        from evalkit.record.verdict import add_verdicts

        add_verdicts(typed)
    return typed


def _where(loc: tuple) -> str:
    """A pydantic error location as a path into the record: runs[0].sync.confidence."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def describe_error(exc) -> str:
    """The first problem of a pydantic ValidationError in one line: where in the record, and what was expected.

    An unknown key comes first, with the key missing beside it if there is one (a misspelt key is both)."""
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc = first["loc"]
    parent = _where(loc[:-1])
    if first["type"] == "extra_forbidden":
        missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and e["loc"][:-1] == loc[:-1]]
        also = f" (expected {', '.join(map(repr, missing))})" if missing else " (not one evalkit writes)"
        return f"{_where(loc)}: unknown key{also}"
    if first["type"] == "missing":
        return f"{parent + ': ' if parent else ''}missing key {loc[-1]!r}"
    return f"{_where(loc) or 'record'}: {first['msg']} (found {json.dumps(first.get('input'), default=str)[:60]})"


def record_json_schema() -> dict:
    """The JSON Schema of run.json (today's version)."""
    schema = RunRecord.model_json_schema(mode="serialization", by_alias=True)
    schema["title"] = f"evalkit run record (run.json), schema_version {RECORD_SCHEMA_VERSION}"
    return schema
