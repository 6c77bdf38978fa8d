"""Views of a run record: summary.csv, frames.csv and report.html. They render ``run.json`` and
compute no metric of their own."""

from __future__ import annotations

from pathlib import Path

from evalkit.report.html import write_html
from evalkit.report.tables import write_tables



def render_run(run_dir: Path, record, log=print) -> None:
    """Write every view of ``record`` (a ``record.schema.RunRecord``) into ``run_dir``."""
    write_tables(Path(run_dir), record)
    write_html(Path(run_dir), record, log=log)
