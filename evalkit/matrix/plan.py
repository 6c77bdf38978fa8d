"""The run matrix's plan: one job per model x backend x input x protocol (a "combination"), named by its four
names (``Job``), in the record's order (``plan_jobs``), handed to workers longest first (``longest_first``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.config.suite import DEFAULT_PROTOCOL
from evalkit.record.runkey import RunKey


def combo_folder(model: str, backend: str, input_name: str, protocol: str = DEFAULT_PROTOCOL) -> str:
    """Folder of one model x backend x input x protocol (the default protocol adds nothing to the name)."""
    base = f"{model}__{backend}__{input_name}"
    return base if protocol == DEFAULT_PROTOCOL else f"{base}__{protocol}"


def protocol_audio(suite, spec, protocol) -> Path:
    """The speech that drives ``spec`` under ``protocol``."""
    if protocol.kind == "reconstruction":
        return spec.audio
    if protocol.audio is not None:
        return protocol.audio
    return next(i.audio for i in suite.inputs if i.name == protocol.audio_from)


@dataclass(frozen=True)
class Job:
    """One combination, by name: what a worker needs besides the suite and the run folder."""

    model: str
    backend: str
    input: str
    protocol: str

    @property
    def key(self) -> RunKey:
        """The run this job makes, as the record names it."""
        return RunKey(self.model, self.backend, self.input, self.protocol)

    @property
    def folder(self) -> str:
        return combo_folder(self.model, self.backend, self.input, self.protocol)

    @property
    def label(self) -> str:
        return f"{self.model} on {self.backend} for {self.input} ({self.protocol})"


def plan_jobs(suite) -> list[Job]:
    """Every combination, in the record's order: model, input, protocol, backend."""
    return [Job(m.name, b.name, i.name, p.name)
            for m in suite.models for i in suite.inputs for p in suite.protocols for b in suite.backends]


def expected_cost(suite, job: Job) -> float:
    """A rough guess of a job's length, to hand out the longest first (``longest_first``): seconds of driving
    speech (the frames it generates) times 1 + its generator's size in MB (a bigger network computes more per
    frame; below a megabyte the harness's per-frame work dominates). Only the order of dispatch depends on it."""
    import soundfile

    model, _, spec, protocol = job_specs(suite, job)
    audio = protocol_audio(suite, spec, protocol)
    try:
        try:
            seconds = soundfile.info(str(audio)).duration
        except soundfile.LibsndfileError:  # a format only ffmpeg reads (the pipeline's way): its size will do
            seconds = Path(audio).stat().st_size / 32000  # as 16 kHz 16-bit mono
        return seconds * (1 + Path(model.generator).stat().st_size / 1e6)
    except OSError:  # gone since the suite was checked: the job itself will say so
        return 0.0


def longest_first(suite, jobs: list[Job]) -> list[Job]:
    """``jobs`` in the order parallel workers should take them: the longest expected first (``expected_cost``),
    ties in the suite's order. Workers that take the long jobs first finish closer together: the classic
    longest-processing-time rule (with exact lengths, never more than 4/3 of the best schedule's), where the
    suite's order can leave one worker running the longest job alone at the end."""
    cost = {job: expected_cost(suite, job) for job in jobs}
    return sorted(jobs, key=lambda job: -cost[job])  # sorted() is stable: equal guesses keep the suite's order


def job_specs(suite, job: Job):
    """The suite's model, backend, input and protocol specs a job names."""
    def pick(items, name):
        return next(item for item in items if item.name == name)

    return (pick(suite.models, job.model), pick(suite.backends, job.backend), pick(suite.inputs, job.input),
            pick(suite.protocols, job.protocol))
