"""Typed records for tests of the views: a ``RunEntry`` or ``RunRecord`` from only the keys a test is about, the
others filled with a finished run's identity (the views read typed records, ``record.schema``)."""

from __future__ import annotations

from evalkit.record.schema import RunEntry, RunRecord

ENTRY = {"model": "m", "backend": "cpu", "input": "clip", "protocol": "reconstruction",
         "protocol_kind": "reconstruction", "reference_frames": "same", "kind": "onnxruntime", "precision": "fp32",
         "status": "ok", "summary": {}}
RECORD = {"run_id": "20240501T100000Z-abcd", "created_utc": "2024-05-01T10:00:00+00:00",
          "suite": {"name": "s", "path": "/x/s.yaml", "sha256": "0" * 64, "definition": {"name": "s"}},
          "machine": {}, "versions": {}, "available_providers": [], "models": {}, "inputs": {}, "runs": []}


def typed_entry(**fields) -> RunEntry:
    """A record entry: ``fields`` over a finished run of model m on cpu for clip."""
    return RunEntry.model_validate({**ENTRY, **fields})


def typed_record(**fields) -> RunRecord:
    """A record: ``fields`` over an empty run; ``runs`` may be dicts of ``typed_entry``'s keys."""
    fields["runs"] = [typed_entry(**e) if isinstance(e, dict) else e for e in fields.get("runs", [])]
    return RunRecord.model_validate({**RECORD, **fields})
