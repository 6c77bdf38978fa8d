"""What identifies one run of a record: model x backend x input x protocol, built here and nowhere else.

Parity, golden outputs, gates, views and ``evalkit compare`` all match runs by ``RunKey``: two runs of one
model on one backend and input but under different protocols (reconstruction, distant, dubbed) are different
runs, never compared with each other as if one were the other's backend.
"""

from __future__ import annotations

from typing import NamedTuple

from evalkit.record.vocabulary import DEFAULT_PROTOCOL  # also that of records from before protocols


class RunKey(NamedTuple):
    """(model, backend, input, protocol): frozen, hashable, ordered; a tuple, so older code that unpacks four
    names keeps working."""

    model: str
    backend: str
    input: str
    protocol: str = DEFAULT_PROTOCOL

    @classmethod
    def of(cls, entry) -> "RunKey":
        """The key of a record entry, a gate result or anything with model, backend, input (and protocol): a
        typed part of the record (attributes) or a dict (keys)."""
        if isinstance(entry, dict):
            return cls(entry["model"], entry["backend"], entry["input"], entry.get("protocol") or DEFAULT_PROTOCOL)
        return cls(entry.model, entry.backend, entry.input, getattr(entry, "protocol", None) or DEFAULT_PROTOCOL)

    @classmethod
    def parse(cls, where: str) -> "RunKey":
        """The key a ``where`` (or ``full``) string names: model/backend/input[/protocol]."""
        return cls(*where.split("/"))

    def without_backend(self) -> tuple[str, str, str]:
        """(model, input, protocol): the runs of one model on one input under one protocol, whatever the
        backend, see the same input tensors: what parity compares across backends."""
        return self.model, self.input, self.protocol

    @property
    def where(self) -> str:
        """model/backend/input, and /protocol when it is not the default reconstruction (gates, JUnit)."""
        ids = f"{self.model}/{self.backend}/{self.input}"
        return ids if self.protocol == DEFAULT_PROTOCOL else f"{ids}/{self.protocol}"

    @property
    def label(self) -> str:
        """"model / backend / input", and " / protocol" when it is not the default: how views name a run."""
        return self.where.replace("/", " / ")

    @property
    def full(self) -> str:
        """model/backend/input/protocol, the protocol always named (parity rows, compare's CSV)."""
        return "/".join(self)
