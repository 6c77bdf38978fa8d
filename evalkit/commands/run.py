"""`evalkit run`: run a suite file, a suite described by flags, or complete an interrupted run (--resume)."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import EXECUTOR_CHOICES, debug, failure_line, failures, progress, stderr
from evalkit.config.suite_flags import add_suite_flags, flag_words, flags_given
from evalkit.errors import EXIT_GATE_FAILED, EXIT_INTERNAL, EXIT_OK, UserError

FLAG_SUITE_FILE = "suite.yaml"  # what a run described by flags keeps of its suite, in its run folder


def add_parser(sub) -> None:
    parser = sub.add_parser("run", help="run a suite", description="Run every model x backend x input of SUITE. "
                            "Writes DIR/<suite-name>/<run-id>/ (run.json, and per run an MP4 and lossless frames) "
                            "and prints that folder's path as the last line.")
    parser.add_argument("suite", metavar="SUITE.yaml", nargs="?", help="the suite file (or describe one run with the "
                        "flags below instead)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the suite's output_dir, else ./reports)")
    parser.add_argument("--save-golden", metavar="DIR", help="also save each model x input's raw outputs (first "
                        "parity.frames frames, .npz + golden.json manifest) as a golden set; a suite's `golden: DIR` "
                        "compares later runs with it")
    g = parser.add_argument_group("CI outputs (always written when asked; a suite without gates gets one check per "
                                  "run: it ran, with finite fidelity and sync metrics)")
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per gate per model x backend x "
                   "input, skipped runs as skipped test cases, totals and times")
    g.add_argument("--summary-md", metavar="FILE", help="write a short Markdown summary, failures first")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary: run_dir, "
                   "gates (or run_checks) with values, skipped and failed runs, passed, exit_code (inf/nan as "
                   "strings)")
    g = parser.add_argument_group("execution (each model x backend x input x protocol is one job; the record, parity, "
                                  "gates and report are made by this process when all have finished)")
    g.add_argument("--workers", type=int, metavar="N", help="run N jobs at once in local worker processes (default: "
                   "this machine's cores over the largest intra_op_num_threads of the suite's backends, unset "
                   "counting as all cores; 1 runs them in this process). Workers take the longest jobs first; on a "
                   "terminal a bar counts the finished ones")
    g.add_argument("--executor", choices=EXECUTOR_CHOICES, default="local", help="local (default): this machine; "
                   "ray: each job a task on a Ray cluster, its files sent through Ray's object store and its "
                   'results written here (needs pip install "evalkit[ray]")')
    g.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster (HOST:PORT of `ray start --head`, or "
                   "auto; default: $RAY_ADDRESS)")
    g.add_argument("--resume", metavar="RUN_DIR", help="complete an interrupted run folder (.<run-id>.partial): "
                   "keeps its finished combinations, runs the rest, then writes the record and the report (the "
                   "suite must be unchanged); list such folders with `evalkit runs partial`")
    add_suite_flags(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    given = flags_given(args)
    if args.resume and (args.suite or given or args.out):
        what = args.suite or args.out and f"--out {args.out}" or " ".join(given)
        raise UserError(f"--resume {args.resume} completes a run with its own suite and folder: leave out {what}")
    if args.suite and given:
        raise UserError(f"give either SUITE.yaml ({args.suite}) or a suite described by flags ({' '.join(given)}), "
                        "not both: add the files to the suite file instead, or leave SUITE.yaml out")
    if not args.suite and not args.generator and not args.resume:
        raise UserError("give SUITE.yaml, or describe one run with flags: --generator G.onnx --audio-encoder E.onnx "
                        "--video V --audio A --crop-boxes F (see `evalkit run --help`), or --resume RUN_DIR")
    options = dict(save_golden=Path(args.save_golden) if args.save_golden else None,
                   junit=Path(args.junit) if args.junit else None,
                   summary_md=Path(args.summary_md) if args.summary_md else None, as_json=args.json,
                   workers=args.workers, executor=args.executor, ray_address=args.ray_address)
    out = Path(args.out) if args.out else None
    if args.resume:
        return run_and_report(None, None, resume=Path(args.resume), **options)
    if args.suite:
        return run_and_report(Path(args.suite), out, **options)
    return _run_flags(args, out, options)


def run_and_report(suite_path: Path | None, out: Path | None, save_golden: Path | None = None,
                   junit: Path | None = None, summary_md: Path | None = None, as_json: bool = False,
                   keep_suite_as: str | None = None, resume: Path | None = None, workers: int | None = None,
                   executor: str = "local", ray_address: str | None = None) -> int:
    """Run a suite (or complete the interrupted run folder ``resume``), print the gate summary and the run
    folder, write the CI files asked for.

    A suite without gates is judged by ``run_checks`` (each run ran, with finite metrics), so ``--junit`` and
    ``--summary-md`` always have something to say; a failed combination is a failed check in either case.
    ``as_json``: stdout is one JSON object (run folder, gate results with their values, skipped and failed
    runs, exit code; non-finite numbers as "inf", "-inf", "nan"), and the human summary goes to stderr.
    Exit code: 3 when a combination failed because of a bug in evalkit, else 1 when one failed (bad input, ONNX
    Runtime) or a gate failed, else 0.
    """
    import json

    from evalkit.config.suite import load_suite
    from evalkit.matrix.executors import check_executor

    # the options and the suite first: a mistake in either is told before the pipeline's imports (2 s here)
    check_executor(executor, workers, ray_address)
    loaded = load_suite(suite_path) if resume is None else None

    from evalkit.ci.gates import summary_text
    from evalkit.record.summary import json_safe, load_run
    from evalkit.run import gate_results, resume_run, run_suite

    # JUnit and Markdown are written before the run folder takes its final name (run._finish), with history
    how = dict(log=progress, save_golden_to=save_golden, workers=workers, executor=executor,
               ray_address=ray_address, finishing={"junit": junit, "summary_md": summary_md}, warn=stderr)
    if resume is not None:
        debug(f"resuming {resume}")
        run_dir = resume_run(resume, **how)
    else:
        debug(f"suite {loaded.path} (sha256 {loaded.sha256[:16]}), output folder {out or 'the suite default'}")
        run_dir = run_suite(loaded, out=out, keep_suite_as=keep_suite_as, **how)
    record = load_run(run_dir)
    name = record.suite.name
    failed, bug = failures(record)
    # a failed combination fails the run whatever the gates say: shown as a failed run check
    results, gated = gate_results(record)
    code = EXIT_INTERNAL if bug else EXIT_OK if all(results) and not failed else EXIT_GATE_FAILED
    for e in failed:
        stderr(failure_line(e))
    if as_json:
        stderr(summary_text(results, gated=gated))
        print(json.dumps(json_safe({
            "run_dir": str(run_dir), "suite": name, "run_id": record.run_id, "gated": gated,
            "gates" if gated else "run_checks": [r.to_dict() for r in results],
            "skipped": [{"model": e.model, "backend": e.backend, "input": e.input, "reason": e.reason}
                        for e in record.runs if e.status == "skipped"],
            "failed": [{"model": e["model"], "backend": e["backend"], "input": e["input"], "protocol": e["protocol"],
                        "reason": e["reason"], "bug": e["bug"]} for e in failed],
            "verdicts": [{"model": e.model, "backend": e.backend, "input": e.input, "protocol": e.protocol,
                          **(e.verdict.model_dump(include={"status", "text", "findings"}) if e.verdict else
                             dict.fromkeys(("status", "text", "findings")))}
                         for e in record.runs],
            "report": str(Path(run_dir) / "report.html"),
            "passed": code == EXIT_OK, "exit_code": code,
        }), allow_nan=False))
        return code
    from evalkit.report.verdicts import verdict_table_text

    print(summary_text(results, gated=gated))
    print()
    print(verdict_table_text(record, report=str(Path(run_dir) / "report.html")))
    print(run_dir)
    return code


def _run_flags(args, out: Path | None, options: dict) -> int:
    """A run described by flags: the suite they describe is written to a temporary file and run like any suite
    file; the run folder keeps it as suite.yaml (absolute paths, so it can be copied and grown)."""
    import tempfile

    from evalkit.config.suite import SuiteError
    from evalkit.config.suite_flags import suite_data, suite_text

    data = suite_data(args)
    text = suite_text(data, "Written by `evalkit run` from its flags (" + " ".join(flag_words(args)) + ").")
    with tempfile.TemporaryDirectory(prefix="evalkit-flags-") as tmp:
        path = Path(tmp) / FLAG_SUITE_FILE
        path.write_text(text)
        debug(f"the suite of the flags:\n{text}")
        try:
            return run_and_report(path, out, keep_suite_as=FLAG_SUITE_FILE, **options)
        except SuiteError as exc:  # name the flags, not a temporary file the user never saw
            where = "the suite of the command-line flags"
            problems = [p.replace(str(path.resolve()), where).replace(str(path), where) for p in exc.problems]
            raise SuiteError(problems) from None
