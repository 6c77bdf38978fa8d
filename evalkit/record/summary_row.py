"""The type of a summary.csv row (``Summary``): one field per column of the record's vocabulary.

Below ``record/schema.py`` (whose entries hold a ``Summary``) and ``record/summary.py`` (which computes the
rows and reads records), so neither imports the other to get it.
"""

from __future__ import annotations

from pydantic import create_model

from evalkit.record.parts import Real, RecordPart
from evalkit.record.vocabulary import COUNT_COLUMNS, SUMMARY_COLUMNS, TEXT_COLUMNS


class SummaryBase(RecordPart):
    """The base of ``Summary``: a part of the record like the others (unknown columns are errors)."""

    def cell(self, column: str):
        """The value of ``column`` (a name of SUMMARY_COLUMNS, as a gate or a table names it)."""
        return getattr(self, column)

    def as_row(self) -> dict:
        """The row as written in summary.csv's column order (non-finite floats as floats)."""
        return self.model_dump()


def _column_type(column: str):
    if column in TEXT_COLUMNS:
        return str | None
    if column in COUNT_COLUMNS:
        return int | None
    return Real | None


Summary = create_model("Summary", __base__=SummaryBase, __doc__=(
    "The summary.csv row of one run (``summary_row``): a field per SUMMARY_COLUMNS column, in order; None where "
    "the run did not produce it. Counts are ints, words strings, every other number a float (inf, nan included)."),
    **{column: (_column_type(column), None) for column in SUMMARY_COLUMNS})
