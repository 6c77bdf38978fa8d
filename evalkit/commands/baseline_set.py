"""`evalkit baseline set`: export a run folder as a baseline for relative gates."""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("set", help="export a run as a baseline",
                             description="Copy RUN_DIR's run.json, summary.csv and frames.csv (no videos) to "
                             "DIR/NAME, small enough to commit. A suite's `baseline: NAME` gates later runs "
                             "against it.")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--name", help="a plain name, not a path (default: the run's suite name)")
    parser.add_argument("--dir", default="baselines", help="default: %(default)s")
    parser.add_argument("--force", action="store_true",
                        help="replace DIR/NAME if it is an existing baseline (anything else there is never replaced)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.ci.baseline import set_baseline

    print(set_baseline(Path(args.run_dir), args.name, Path(args.dir), force=args.force))
    return EXIT_OK
