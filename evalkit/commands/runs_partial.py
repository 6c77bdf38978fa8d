"""`evalkit runs partial`: list (or remove) the unfinished run folders under a folder."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import progress
from evalkit.errors import EXIT_OK, UserError


def add_parser(sub) -> None:
    parser = sub.add_parser(
      "partial", help="list (or remove) unfinished run folders",
      description="List the unfinished run folders (.<run-id>.partial: interrupted, or still running) under DIR "
      "(an output folder, or one suite's folder in it), with the time since each last changed and how many of "
      "its combinations finished. Continue one with `evalkit run --resume RUN_DIR`.")
    parser.add_argument("dir", nargs="?", default="reports", metavar="DIR", help="default: %(default)s")
    parser.add_argument("--remove", action="store_true", help="remove the listed folders whose run has stopped "
                        "(one still running on this machine is kept)")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Unfinished run folders (.<run-id>.partial) under DIR: age, finished combinations; --remove deletes the
    stopped ones (a folder whose run is still going, on this machine, is never removed)."""
    import shutil

    from evalkit.matrix.jobs import partial_runs

    where = Path(args.dir)
    if not where.is_dir():
        raise UserError(f"{where}: folder not found (give the output folder runs go to, e.g. reports)")
    found = partial_runs(where)
    if not found:
        progress(f"no unfinished run folders under {where}")
        return EXIT_OK
    for run in found:
        hours = run.age_seconds / 3600
        age = f"{hours:.1f} h" if hours >= 1 else f"{run.age_seconds / 60:.0f} min"
        total = "?" if run.combinations is None else run.combinations
        state = "running" if run.running else ("removed" if args.remove else "stopped")
        if args.remove and not run.running:
            shutil.rmtree(run.path)
        print(f"{run.path}  {state:8}  last change {age} ago  {run.finished} of {total} combinations finished")
    if not args.remove and any(not r.running for r in found):
        progress("continue one with `evalkit run --resume RUN_DIR`, or remove the stopped ones with --remove")
    return EXIT_OK
