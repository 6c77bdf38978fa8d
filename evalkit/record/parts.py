"""The record's building blocks: ``RecordPart`` (a part evalkit writes: unknown keys are errors) and ``Real`` (a
float that may be non-finite, stored as "inf", "-inf", "nan"). Below ``record.schema`` and ``record.summary``,
so that the summary row's type (``record.summary.Summary``) is a part like the others."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationInfo, model_validator


def _real_to_json(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


Real = Annotated[float, PlainSerializer(_real_to_json, when_used="json")]
"""A float that may be non-finite: read from a number or "inf"/"-inf"/"nan", written back as those strings."""


class RecordPart(BaseModel):
    """A part of the record that evalkit writes: unknown keys are errors, unless the record is being migrated
    from an older version (validation context ``{"migrating": True}``), when keys older code wrote are dropped.
    Assigning to a field checks it too (``validate_assignment``): a part stays what its type says."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_old_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get("migrating"):
            known = {f.alias or name for name, f in cls.model_fields.items()}
            return {k: v for k, v in data.items() if k in known}
        return data
