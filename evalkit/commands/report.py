"""`evalkit report`: render a run folder's views (CSV tables, report.html) again from its run.json."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import progress
from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("report", help="re-render summary.csv, frames.csv and report.html of a run",
                            description="Render the views of RUN_DIR/run.json again (after an evalkit upgrade, say).")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.measure.view_assets import make_view_assets
    from evalkit.record.summary import load_run
    from evalkit.report import render_run

    run_dir = Path(args.run_dir)
    record = load_run(run_dir)
    make_view_assets(run_dir, record, log=progress)  # only a folder from an older evalkit lacks them
    render_run(run_dir, record, log=progress)
    print(run_dir / "report.html")
    return EXIT_OK
