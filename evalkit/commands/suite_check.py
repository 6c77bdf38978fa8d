"""`evalkit suite check`: every problem `run` would stop at before generating, or a summary of the suite."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import stderr
from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("check", help="validate a suite without running it",
                             description="Parse SUITE.yaml, check every field and that every file it names exists.")
    parser.add_argument("suite", metavar="SUITE.yaml")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Every problem `run` would stop at before generating, one per line on stderr (exit 2), or a summary."""
    from evalkit.run import preflight
    from evalkit.config.suite import SuiteError, load_suite

    try:
        loaded = load_suite(Path(args.suite))
        preflight(loaded)
    except SuiteError as exc:
        for problem in exc.problems:
            stderr(f"evalkit: error: {problem}")
        return exc.exit_code
    s = loaded.suite
    runs = len(s.models) * len(s.backends) * len(s.inputs) * len(s.protocols)
    print(f"{loaded.path}: valid suite '{s.name}': {len(s.models)} models x {len(s.backends)} backends x "
          f"{len(s.inputs)} inputs x {len(s.protocols)} protocols ({', '.join(p.name for p in s.protocols)}) "
          f"= {runs} runs")
    for line in _backends_skipped_here(s):
        print(line)
    return EXIT_OK


def _backends_skipped_here(suite) -> list[str]:
    """A line per backend whose provider this machine lacks: its runs will be skipped here (a required one is
    refused before `suite check` gets here: preflight fails the run)."""
    from evalkit.pipeline.runner import available_providers

    have = available_providers()
    lines = []
    for b in suite.backends:
        if b.kind == "onnxruntime" and b.provider not in have:
            per = len(suite.models) * len(suite.inputs) * len(suite.protocols)
            lines.append(f"backend '{b.name}' ({b.provider}): not available on this machine (it has "
                         f"{', '.join(have)}): its {per} runs will be skipped here; not required (set "
                         "`required: true` on the backend to make its absence fail the run)")
    return lines
