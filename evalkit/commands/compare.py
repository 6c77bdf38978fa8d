"""`evalkit compare`: compare two run folders (comparison.csv, comparison.html, side-by-side videos)."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import progress, stderr
from evalkit.errors import EXIT_GATE_FAILED, EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("compare", help="compare two run folders",
                            description="Match two runs by model x backend x input x protocol and write "
                            "comparison.csv (every summary field of A and B, B - A, and B / A for speed), "
                            "comparison.html (what changed first: quality identical or not, speed beyond noise or "
                            "not, raw outputs agreeing or not; then each run's verdict in A and B, the changed "
                            "values, tensor and picture parity of B against A) and side-by-side videos (A | B). "
                            "Prints that headline and the page's path; exit 1 with one line when two runs' "
                            "outputs differ in shape (another model: not comparable output by output).")
    parser.add_argument("run_a", metavar="RUN_A")
    parser.add_argument("run_b", metavar="RUN_B")
    parser.add_argument("--out", metavar="DIR", help="default: compare/<A-id>_vs_<B-id> beside the runs' suite "
                        "folders (<out>/compare/ for runs in <out>/<suite>/<run-id>), whatever the working directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object (output files, the runs "
                        "compared, the speed changes the Mann-Whitney test finds) instead of the page's path")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.compare import compare_runs

    a, b = Path(args.run_a), Path(args.run_b)
    # Default: beside the runs it reads (<out>/compare/ for runs in <out>/<suite>/<run-id>), whatever the cwd.
    out = Path(args.out) if args.out else b.resolve().parent.parent / "compare" / f"{a.name}_vs_{b.name}"
    result = compare_runs(a, b, out, log=progress)
    code = EXIT_GATE_FAILED if result.problems else EXIT_OK
    if args.json:
        import json

        import pandas as pd

        from evalkit.ci.gates import SPEED_ALPHA
        from evalkit.record.summary import json_safe

        table = pd.read_csv(out / "comparison.csv")
        significant = table[table["mann_whitney_p"].notna() & (table["mann_whitney_p"] < SPEED_ALPHA)]
        print(json.dumps(json_safe({
            "out": str(out), "html": str(out / "comparison.html"), "csv": str(out / "comparison.csv"),
            "compared": sorted({f"{r.model}/{r.backend}/{r.input}/{r.protocol}" for r in table.itertuples()}),
            "headline": result.headline, "problems": result.problems,
            "significant_speed_changes": significant.to_dict("records"),
        }), allow_nan=False))
        return code
    if result.problems:  # one line: what cannot be compared (the page lists each)
        more = f" (and {len(result.problems) - 1} more; see {out / 'comparison.html'})" if len(result.problems) > 1 else ""
        stderr(f"evalkit: not comparable: {result.problems[0]}{more}")
        return code
    for line in result.headline:
        print(line)
    print(out / "comparison.html")
    return code
