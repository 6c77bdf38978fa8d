"""`evalkit history`: the runs recorded over time, with trends (or --record a run that missed its entry)."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import debug
from evalkit.errors import EXIT_OK, UserError


def add_parser(sub) -> None:
    parser = sub.add_parser("history", help="runs recorded over time, with trends",
                            description="Every finished run is recorded in DIR/history.sqlite (DIR: where its run "
                            "folder went). Prints the runs in time order, the chosen fields per model/backend/input, "
                            "and writes an HTML page with a trend per field and the suite's gate limits drawn on it.")
    parser.add_argument("where", nargs="?", metavar="RUN_DIR|SUITE.yaml",
                        help="find the database beside this run folder's runs, or where this suite's runs go (a "
                        "suite file also selects its suite)")
    parser.add_argument("--suite", help="only this suite")
    parser.add_argument("--field", action="append", help="a summary.csv field (repeatable; default for the page: "
                        "psnr_mean, ssim_mean, sync_offset_frames, throughput_fps; the old name fps still reads)")
    parser.add_argument("--db", help="the database (default: found from RUN_DIR or SUITE.yaml; without them "
                        "./reports/history.sqlite)")
    parser.add_argument("--out", metavar="HTML", help="default: history.html beside the database")
    parser.add_argument("--record", metavar="RUN_DIR", action="append", help="add this finished run folder to the "
                        "database beside it (or --db) instead: for a run that could not record itself (a busy "
                        "database); repeatable; recording a run again replaces its entry")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.ci import history

    if args.record:
        return _history_record(args)
    db = _history_db(args)
    debug(f"history database: {db}")
    if not db.is_file():
        raise UserError(f"no history database at {db} (runs record themselves there; pass --db for another)")
    recorded = history.runs(db, args.suite)
    if not recorded:
        raise UserError(f"{db}: no runs" + (f" of suite {args.suite!r}" if args.suite else ""))
    print(f"{'time (UTC)':25} {'suite':12} {'run':22} {'commit':19} gates")
    for r in recorded:
        gates = "-" if r["gates_passed"] is None else ("passed" if r["gates_passed"] else "FAILED")
        commit = r["git_commit"] or "-"
        commit = commit[:12] + ("+dirty" if commit.endswith("-dirty") else "")
        print(f"{r['created_utc']:25} {r['suite']:12} {r['run_id']:22} {commit:19} {gates}")
    fields = args.field or list(history.DEFAULT_FIELDS)
    for field in args.field or []:
        table = history.history_table(db, args.suite, field)
        print(f"\n{field}:")
        print(table.to_string(float_format=lambda v: f"{v:.6g}") if not table.empty else "  (no values)")
    out = Path(args.out) if args.out else db.with_name("history.html")
    history.write_history_html(db, args.suite, fields, out)
    print(out)
    return EXIT_OK


def _history_record(args) -> int:
    """``evalkit history --record RUN_DIR``: add a finished run that missed its entry (a busy database) to the
    history database beside it (or --db); recording a run again replaces its entry."""
    from evalkit.ci import history
    from evalkit.record.summary import load_run

    if args.where or args.field or args.suite or args.out:
        raise UserError("--record RUN_DIR adds a run to the history database: give it alone, or with --db FILE")
    for folder in args.record:
        run_dir = Path(folder).resolve()
        record = load_run(run_dir)
        db = Path(args.db) if args.db else run_dir.parent.parent / history.HISTORY_DB
        history.record_run(db, record, run_dir)
        print(f"recorded run {record.run_id} in {db}")
    return EXIT_OK


def _history_db(args) -> Path:
    """--db; else beside the runs of WHERE (a run folder: <out>/<suite>/<run-id>; a suite file: its output_dir,
    and its name as --suite unless given); else ./reports/history.sqlite."""
    from evalkit.ci.history import HISTORY_DB

    if args.db:
        if args.where:
            raise UserError(f"give either {args.where} or --db {args.db}, not both (the database is found from "
                            "the run folder or suite file)")
        return Path(args.db)
    if not args.where:
        return Path("reports") / HISTORY_DB
    where = Path(args.where)
    if where.is_dir() and (where / "run.json").is_file():
        return where.resolve().parent.parent / HISTORY_DB
    if where.is_file() and where.suffix in (".yaml", ".yml"):
        from evalkit.config.suite import load_suite

        suite = load_suite(where).suite
        args.suite = args.suite or suite.name
        return (suite.output_dir or Path("reports")) / HISTORY_DB
    if where.is_file() and where.suffix in (".sqlite", ".db"):
        return where
    raise UserError(f"{where}: not a run folder (with run.json), a suite file (.yaml) or a history database "
                    "(.sqlite); give one of those, or --db FILE")
