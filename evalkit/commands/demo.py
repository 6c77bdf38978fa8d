"""`evalkit demo`: build evalkit's fixtures if missing and run suites/demo.yaml on them."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import debug, names, progress
from evalkit.commands.run import run_and_report
from evalkit.locations import FIXTURES_ENV, default_fixtures_dir, source_checkout


def add_parser(sub) -> None:
    parser = sub.add_parser("demo", help="build the fixtures if missing and run suites/demo.yaml",
                            description="Build evalkit's own fixtures (a drawn talking head, speech-like audio and "
                            "fixture ONNX models) if they are missing, run suites/demo.yaml on them, and print the "
                            "run folder. Needs no file from outside.")
    parser.add_argument("--out", metavar="DIR", help="where the run folder goes (default: reports/ of the checkout; "
                        "installed from a wheel: ./reports of the working directory)")
    parser.add_argument("--rebuild-fixtures", action="store_true", help="rebuild the fixtures even if present")
    parser.add_argument("--models", metavar="NAMES", type=names,
                        help="run only these of the demo's models, comma-separated (e.g. reference,copycat: a quicker "
                        "look; the default runs all six)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.fixtures.build import build_fixtures, fixtures_ready
    from evalkit.locations import demo_suite_for, shipped

    fixtures = default_fixtures_dir()
    debug(f"fixtures folder: ${FIXTURES_ENV}, else data/fixtures of a checkout, else the user's cache (this "
           f"evalkit runs from {source_checkout() or 'an installed package'})")
    if args.rebuild_fixtures or not fixtures_ready(fixtures):
        progress(f"building the demo fixtures into {fixtures} (once, a few seconds) ...")
        build_fixtures(fixtures)
        progress(f"wrote the demo fixtures into {fixtures}")
    else:
        progress(f"using the demo fixtures in {fixtures}")
    suite = demo_suite_for(fixtures, args.models)
    # From a checkout: reports/ of the checkout (the demo suite's output_dir); installed: ./reports here.
    checkout = source_checkout()
    out = Path(args.out) if args.out else (checkout / "reports" if checkout else Path.cwd() / "reports")
    progress(f"running {suite} -> {out} ...")
    code = run_and_report(suite, out)
    progress(f"explore the run in Jupyter: {shipped('notebooks/explore_run.ipynb')} (set EVALKIT_RUN_DIR to the "
              "run folder above)")
    return code
