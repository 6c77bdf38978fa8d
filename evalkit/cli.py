"""The ``evalkit`` command line.

Exit codes: 0 success, 1 a check failed (a gate, or a required backend
missing, or a combination failed on bad input), 2 usage or input error (one
line saying what and where; a missing baseline too), 3 internal error (a bug in
evalkit: please report it with the traceback; also when a bug failed one
combination of a run, after the others ran). Ctrl-C: 130, SIGTERM: 143.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sqlite3
import sys
import threading
import traceback
import warnings
import zipfile
from pathlib import Path

# One BLAS thread: evalkit's matrix work is small (mel filters, a PCA), and OpenBLAS's spinning threads fight
# ONNX Runtime's and the stage threads for the cores (a 300k-element dot took 12-30 ms instead of 1 on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from evalkit import __version__  # noqa: E402 (after the BLAS setting, before anything imports numpy)
from evalkit.errors import EXIT_GATE_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UserError
from evalkit.media.ffmpeg import FFMPEG_ENV

from evalkit.locations import FIXTURES_ENV, default_fixtures_dir, source_checkout
from evalkit.config.suite_flags import add_suite_flags

QUIET, NORMAL, VERBOSE = -1, 0, 1
EXECUTOR_CHOICES = ("local", "ray")  # executors.EXECUTORS, without importing the run machinery for --help
_verbosity = NORMAL  # set by the global -q / -v flags


def _stderr(message: str) -> None:
    """A line on stderr, always (errors, and results sent to stderr)."""
    print(message, file=sys.stderr, flush=True)


def _progress(message: str) -> None:
    """A progress line on stderr, unless -q."""
    if _verbosity >= NORMAL:
        _stderr(message)


def _debug(message: str) -> None:
    """A debug line on stderr, only with -v."""
    if _verbosity >= VERBOSE:
        _stderr(f"evalkit: debug: {message}")


def cmd_fixtures_build(args) -> int:
    from evalkit.fixtures.build import build_fixtures

    dest = Path(args.dest).expanduser().resolve() if args.dest else default_fixtures_dir()
    _debug(f"fixtures folder: --dest, else ${FIXTURES_ENV}, else data/fixtures of a checkout, else the user's cache "
           f"(this evalkit runs from {source_checkout() or 'an installed package'})")
    _progress(f"building fixtures into {dest} ...")
    manifest = build_fixtures(dest)
    _progress(f"wrote the fixtures into {dest}")
    for name, facts in manifest["files"].items():
        print(f"{facts['sha256'][:16]}  {facts['bytes']:>10,d}  {name}")
    print(dest)
    return EXIT_OK


def cmd_suite_schema(args) -> int:
    from evalkit.config.suite import suite_json_schema

    print(suite_json_schema())
    return EXIT_OK


def cmd_record_schema(args) -> int:
    from evalkit.record.schema import record_json_schema

    print(json.dumps(record_json_schema(), indent=1))
    return EXIT_OK


def cmd_suite_check(args) -> int:
    """Every problem `run` would stop at before generating, one per line on stderr (exit 2), or a summary."""
    from evalkit.run import preflight
    from evalkit.config.suite import SuiteError, load_suite

    try:
        loaded = load_suite(Path(args.suite))
        preflight(loaded)
    except SuiteError as exc:
        for problem in exc.problems:
            _stderr(f"evalkit: error: {problem}")
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


def _run(suite_path: Path | None, out: Path | None, save_golden: Path | None = None, junit: Path | None = None,
         summary_md: Path | None = None, as_json: bool = False, keep_suite_as: str | None = None,
         resume: Path | None = None, workers: int | None = None, executor: str = "local",
         ray_address: str | None = None) -> int:
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
    how = dict(log=_progress, save_golden_to=save_golden, workers=workers, executor=executor,
               ray_address=ray_address, finishing={"junit": junit, "summary_md": summary_md}, warn=_stderr)
    if resume is not None:
        _debug(f"resuming {resume}")
        run_dir = resume_run(resume, **how)
    else:
        _debug(f"suite {loaded.path} (sha256 {loaded.sha256[:16]}), output folder {out or 'the suite default'}")
        run_dir = run_suite(loaded, out=out, keep_suite_as=keep_suite_as, **how)
    record = load_run(run_dir)
    name = record.suite.name
    failed, bug = _failures(record)
    # a failed combination fails the run whatever the gates say: shown as a failed run check
    results, gated = gate_results(record)
    code = EXIT_INTERNAL if bug else EXIT_OK if all(results) and not failed else EXIT_GATE_FAILED
    for e in failed:
        _stderr(_failure_line(e))
    if as_json:
        _stderr(summary_text(results, gated=gated))
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


def cmd_run(args) -> int:
    from evalkit.config.suite_flags import flags_given

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
        return _run(None, None, resume=Path(args.resume), **options)
    if args.suite:
        return _run(Path(args.suite), out, **options)
    return _run_flags(args, out, options)


FLAG_SUITE_FILE = "suite.yaml"  # what a run described by flags keeps of its suite, in its run folder


def _names(text: str) -> list[str]:
    """A comma-separated list of names (argparse type): 'a, b' -> ['a', 'b']."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _run_flags(args, out: Path | None, options: dict) -> int:
    """A run described by flags: the suite they describe is written to a temporary file and run like any suite
    file; the run folder keeps it as suite.yaml (absolute paths, so it can be copied and grown)."""
    import tempfile

    from evalkit.config.suite import SuiteError
    from evalkit.config.suite_flags import suite_data, suite_text

    data = suite_data(args)
    text = suite_text(data, "Written by `evalkit run` from its flags (" + " ".join(_flag_words(args)) + ").")
    with tempfile.TemporaryDirectory(prefix="evalkit-flags-") as tmp:
        path = Path(tmp) / FLAG_SUITE_FILE
        path.write_text(text)
        _debug(f"the suite of the flags:\n{text}")
        try:
            return _run(path, out, keep_suite_as=FLAG_SUITE_FILE, **options)
        except SuiteError as exc:  # name the flags, not a temporary file the user never saw
            where = "the suite of the command-line flags"
            problems = [p.replace(str(path.resolve()), where).replace(str(path), where) for p in exc.problems]
            raise SuiteError(problems) from None


def _flag_words(args) -> list[str]:
    from evalkit.config.suite_flags import SUITE_FLAGS

    words = []
    for dest in SUITE_FLAGS:
        value = getattr(args, dest, None)
        for v in (value if isinstance(value, list) else [value]):
            if v is True:
                words.append("--" + dest.replace("_", "-"))
            elif v:
                words += ["--" + dest.replace("_", "-"), str(v)]
    return words


def cmd_init(args) -> int:
    """A commented starter suite for the user's files (or evalkit's fixtures), checked as it is made."""
    from evalkit.run import preflight
    from evalkit.config.suite import SuiteError, load_suite
    from evalkit.config.suite_flags import check_files, suite_data, suite_text

    out = Path(args.out or "suite.yaml")
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; give the suite file to write (e.g. {out / 'suite.yaml'})")
    if out.exists() and not args.force:
        raise UserError(f"{out}: already exists; choose another file with --out, or pass --force to replace it")
    starter = not args.generator
    if starter:
        if any(getattr(args, f, None) for f in ("audio_encoder", "video", "audio", "crop_boxes", "landmarks",
                                                "dataset", "ground_truth")):
            raise UserError("--generator G.onnx is missing: give it with the other files, or no file at all for a "
                            "starter on evalkit's own fixtures")
        _use_fixtures(args)
    folder = out.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    data = suite_data(args, relative_to=folder)
    check_files(data, folder, _progress)
    origin = ("Written by `evalkit init` on evalkit's own fixtures: replace them with your files." if starter else
              "Written by `evalkit init` for " + " ".join(_flag_words(args)) + ".")
    text = suite_text(data, origin)
    # Checked as `evalkit suite check` would check it, from a temporary file beside the target (the paths are
    # relative to that folder), before the target is written: a refused suite leaves no file behind.
    trial = folder / f".{out.name}.evalkit-init.tmp"
    try:
        trial.write_text(text)
        loaded = load_suite(trial)
        preflight(loaded)
        os.replace(trial, out)
    except SuiteError as exc:  # said of the file the user asked for, which is not written
        problems = [p.replace(str(trial.resolve()), str(out)).replace(str(trial), str(out)) for p in exc.problems]
        problems = [f"{out} not written: {p.removeprefix(f'{out}: ')}" for p in problems]
        raise SuiteError(problems) from None
    finally:
        trial.unlink(missing_ok=True)
    s = loaded.suite
    _progress(f"wrote {out}: suite '{s.name}', passes `evalkit suite check`; run it with `evalkit run {out}`")
    print(out)
    return EXIT_OK


def _use_fixtures(args) -> None:
    """No files given to init: the starter names evalkit's fixtures (built when missing)."""
    from evalkit.fixtures.build import build_fixtures, fixtures_ready

    fixtures = default_fixtures_dir()
    if not fixtures_ready(fixtures):
        _progress(f"no files given: building evalkit's fixtures into {fixtures} for the starter suite ...")
        build_fixtures(fixtures)
    _progress(f"no files given: the starter suite uses evalkit's fixtures in {fixtures}; replace them with yours")
    args.generator = str(fixtures / "models" / "reference.onnx")
    args.audio_encoder = str(fixtures / "models" / "audio_encoder.onnx")
    args.video = args.ground_truth = str(fixtures / "clip" / "talking_head.mkv")
    args.audio = str(fixtures / "clip" / "speech.wav")
    args.crop_boxes = str(fixtures / "clip" / "crop_boxes.txt")


def cmd_demo(args) -> int:
    from evalkit.fixtures.build import build_fixtures, fixtures_ready
    from evalkit.locations import demo_suite_for, shipped

    fixtures = default_fixtures_dir()
    _debug(f"fixtures folder: ${FIXTURES_ENV}, else data/fixtures of a checkout, else the user's cache (this "
           f"evalkit runs from {source_checkout() or 'an installed package'})")
    if args.rebuild_fixtures or not fixtures_ready(fixtures):
        _progress(f"building the demo fixtures into {fixtures} (once, a few seconds) ...")
        build_fixtures(fixtures)
        _progress(f"wrote the demo fixtures into {fixtures}")
    else:
        _progress(f"using the demo fixtures in {fixtures}")
    suite = demo_suite_for(fixtures, args.models)
    # From a checkout: reports/ of the checkout (the demo suite's output_dir); installed: ./reports here.
    checkout = source_checkout()
    out = Path(args.out) if args.out else (checkout / "reports" if checkout else Path.cwd() / "reports")
    _progress(f"running {suite} -> {out} ...")
    code = _run(suite, out)
    _progress(f"explore the run in Jupyter: {shipped('notebooks/explore_run.ipynb')} (set EVALKIT_RUN_DIR to the "
              "run folder above)")
    return code


def cmd_metrics_fidelity(args) -> int:
    import json

    from evalkit.measure.video_fidelity import fidelity_between
    from evalkit.media.frames import parse_roi
    from evalkit.record.summary import json_safe

    result = fidelity_between(Path(args.reference), Path(args.candidate), parse_roi(args.roi), trim=args.trim)
    if args.json:
        print(json.dumps(json_safe(result), allow_nan=False))
        return EXIT_OK
    x, y, w, h = result["roi"]
    print(f"{result['frames']} frames, region x={x} y={y} w={w} h={h}")
    print(f"PSNR mean {result['psnr_mean']:.3f} dB (over finite frames; {result['psnr_inf_frames']} identical), "
          f"min {result['psnr_min']:.3f} dB")
    print(f"SSIM mean {result['ssim_mean']:.5f}, min {result['ssim_min']:.5f}")
    return EXIT_OK


def cmd_metrics_sync(args) -> int:
    import json

    from evalkit.measure.video_fidelity import sync_of_video
    from evalkit.media.frames import parse_roi

    if args.max_offset < 1:
        raise UserError(f"--max-offset must be at least 1 frame, got {args.max_offset}")
    result = sync_of_video(Path(args.video), Path(args.audio) if args.audio else None, parse_roi(args.roi),
                           args.max_offset)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    if result["no_signal"]:
        print(f"no sync signal: {result['reason']}")
    else:
        verdict = "reliable" if result["reliable"] else f"UNRELIABLE: {result['reason']}"
        print(f"offset {result['offset_frames']:+d} frames ({result['offset_ms']:+.1f} ms at {result['fps']:g} fps), "
              f"confidence {result['confidence']:.2f} ({verdict})")
        print("positive: the mouth moves after the sound it belongs to (the video lags the audio)")
    if result["note"]:
        print(f"note: {result['note']}")
    return EXIT_OK


def cmd_metrics_field(args) -> int:
    import json

    from evalkit.measure.field_videos import field_between, field_lines
    from evalkit.media.frames import parse_roi
    from evalkit.record.summary import json_safe

    if (args.lpips is None) != (args.lpips_linear is None):
        raise UserError("--lpips and --lpips-linear go together: the feature network and its linear weights (.npz)")
    for option in ("lpips", "lpips_linear", "fid", "fvd", "audio"):
        value = getattr(args, option)
        if value is not None and not Path(value).is_file():
            raise UserError(f"--{option.replace('_', '-')} {value}: file not found")
    result = field_between(Path(args.reference), Path(args.candidate), parse_roi(args.roi), trim=args.trim,
                           lpips=(Path(args.lpips), Path(args.lpips_linear)) if args.lpips else None,
                           fid=Path(args.fid) if args.fid else None, fvd=Path(args.fvd) if args.fvd else None,
                           audio=Path(args.audio) if args.audio else None)
    if args.json:
        print(json.dumps(json_safe(result), allow_nan=False))
        return EXIT_OK
    for line in field_lines(result):
        print(line)
    return EXIT_OK


def cmd_baseline_set(args) -> int:
    from evalkit.ci.baseline import set_baseline

    print(set_baseline(Path(args.run_dir), args.name, Path(args.dir), force=args.force))
    return EXIT_OK


def cmd_history(args) -> int:
    from evalkit.ci import history

    if args.record:
        return _history_record(args)
    db = _history_db(args)
    _debug(f"history database: {db}")
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


def cmd_signoff(args) -> int:
    from evalkit.ci import signoff
    from evalkit.ci.gates import GateResult

    if args.target == "keygen":
        if not args.out or args.record or args.model or args.key or args.public_key or args.resume:
            raise UserError("usage: evalkit signoff keygen --out DIR")
        private_path, public_path = signoff.generate_keys(Path(args.out))
        print(f"private key (keep it secret, mode 0600): {private_path}")
        print(f"public key (give it to whoever verifies): {public_path}")
        return EXIT_OK
    if args.target == "verify":
        if not args.record or not args.model or args.key or args.resume:
            raise UserError("usage: evalkit signoff verify signoff.json --model MODEL.onnx [--public-key PUB.pem]")
        public_key = Path(args.public_key) if args.public_key else None
        problems = signoff.verify_signoff(Path(args.record), Path(args.model), public_key)
        if args.json:
            import json

            print(json.dumps({"record": str(args.record), "model": str(args.model), "verified": not problems,
                              "origin_checked": public_key is not None, "problems": problems}))
            return EXIT_GATE_FAILED if problems else EXIT_OK
        for problem in problems:
            print(f"FAILED: {problem}")
        if not problems and public_key is not None:
            print(f"verified: {args.record} is unaltered, signs off {args.model}, and was signed with the key of "
                  f"{public_key}")
        elif not problems:
            print(f"verified: {args.record} is unaltered and signs off {args.model} (integrity only: its digest "
                  "can be recomputed by anyone, so its origin was not checked; sign with --key and verify with "
                  "--public-key for that)")
        return EXIT_GATE_FAILED if problems else EXIT_OK
    from evalkit.run import resume_run, run_suite
    from evalkit.config.suite import load_suite
    from evalkit.record.summary import load_run

    if args.resume:
        if args.target or args.model or args.model_name or args.key or args.out or args.record or args.public_key:
            raise UserError(f"--resume {args.resume} finishes an interrupted sign-off with its own suite, model and "
                            "key: give it alone (evalkit signoff --resume RUN_DIR)")
        # the run folder's state names the model signed off: the sign-off is written before the final rename
        run_dir = resume_run(Path(args.resume), log=_progress, warn=_stderr)
        if not (run_dir / signoff.SIGNOFF_JSON).is_file():
            raise UserError(f"--resume {args.resume}: the run was not a sign-off's (it was completed as a plain run "
                            f"in {run_dir}); start one with `evalkit signoff SUITE.yaml --model MODEL.onnx`")
    else:
        if not args.target or not args.model or args.record or args.public_key:
            raise UserError("usage: evalkit signoff SUITE.yaml --model MODEL.onnx [--model-name NAME] [--key KEY.pem] "
                            "[--out DIR]")
        if args.key:
            signoff.load_private_key(Path(args.key))  # before the run: fail early
        loaded = signoff.with_model(load_suite(Path(args.target)), Path(args.model), args.model_name)
        finishing = {"signoff": {"model": str(Path(args.model).resolve()), "model_name": args.model_name,
                                 "key": str(Path(args.key).resolve()) if args.key else None}}
        run_dir = run_suite(loaded, out=Path(args.out) if args.out else None, log=_progress, finishing=finishing,
                            warn=_stderr)
    run = load_run(run_dir)
    json_path, html_path = run_dir / signoff.SIGNOFF_JSON, run_dir / signoff.SIGNOFF_HTML
    record = signoff.read_signoff(json_path)
    model = record["model"]["path"]
    private_key = record.get("signature")
    failed = [g for g in record["criteria"] if not g["passed"]]
    failed_runs, bug = _failures(run)
    # a bug's verdict is FAIL, but the cause is evalkit's, not the model's: exit 3, and its error line
    code = EXIT_INTERNAL if bug else EXIT_OK if record["verdict"] == "PASS" else EXIT_GATE_FAILED
    for e in failed_runs:
        if e["bug"]:
            _stderr(_failure_line(e))
    if args.json:
        import json

        from evalkit.record.summary import json_safe

        print(json.dumps(json_safe({
            "verdict": record["verdict"], "model": str(args.model or model), "signed": private_key is not None,
            "criteria_passed": len(record["criteria"]) - len(failed), "criteria": len(record["criteria"]),
            "failed": failed, "run_dir": str(run_dir), "signoff_json": str(json_path), "signoff_html": str(html_path),
        }), allow_nan=False))
        return code
    from evalkit.report.verdicts import verdict_table_text

    print(f"sign-off {record['verdict']}: {len(record['criteria']) - len(failed)} of {len(record['criteria'])} "
          f"criteria passed for {args.model or model}" + ("" if private_key else " (unsigned: pass --key to sign it)"))
    for g in failed:
        print(f"  FAIL  {GateResult(**g).where}  {g['gate']}: {g['message']}")
    print()
    print(verdict_table_text(run, report=str(html_path)))
    print(html_path)
    print(json_path)
    return code


def _failure_line(entry: dict) -> str:
    """stderr's line for a combination that failed."""
    return (f"evalkit: error: {entry['model']}/{entry['backend']}/{entry['input']}/{entry['protocol']} failed: "
            f"{entry['reason']}")


def _failures(record) -> tuple[list[dict], bool]:
    """The record's failed combinations (as dicts), each with ``bug`` set (it failed because of a bug in evalkit,
    not because of its input or its backend), and whether any did: the one place that decides exit code 3."""
    from evalkit.matrix.jobs import INTERNAL, failure_kind

    failed = [dict(e.model_dump(mode="json"), bug=failure_kind(e) == INTERNAL) for e in record.runs
              if e.status == "failed"]
    return failed, any(e["bug"] for e in failed)


def cmd_compare(args) -> int:
    from evalkit.compare import compare_runs

    a, b = Path(args.run_a), Path(args.run_b)
    # Default: beside the runs it reads (<out>/compare/ for runs in <out>/<suite>/<run-id>), whatever the cwd.
    out = Path(args.out) if args.out else b.resolve().parent.parent / "compare" / f"{a.name}_vs_{b.name}"
    result = compare_runs(a, b, out, log=_progress)
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
        _stderr(f"evalkit: not comparable: {result.problems[0]}{more}")
        return code
    for line in result.headline:
        print(line)
    print(out / "comparison.html")
    return code


def cmd_runs_partial(args) -> int:
    """Unfinished run folders (.<run-id>.partial) under DIR: age, finished combinations; --remove deletes the
    stopped ones (a folder whose run is still going, on this machine, is never removed)."""
    import shutil

    from evalkit.matrix.jobs import partial_runs

    where = Path(args.dir)
    if not where.is_dir():
        raise UserError(f"{where}: folder not found (give the output folder runs go to, e.g. reports)")
    found = partial_runs(where)
    if not found:
        _progress(f"no unfinished run folders under {where}")
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
        _progress("continue one with `evalkit run --resume RUN_DIR`, or remove the stopped ones with --remove")
    return EXIT_OK


def cmd_report(args) -> int:
    from evalkit.measure.view_assets import make_view_assets
    from evalkit.record.summary import load_run
    from evalkit.report import render_run

    run_dir = Path(args.run_dir)
    record = load_run(run_dir)
    make_view_assets(run_dir, record, log=_progress)  # only a folder from an older evalkit lacks them
    render_run(run_dir, record, log=_progress)
    print(run_dir / "report.html")
    return EXIT_OK


def _contract_from_file(path: str | None):
    """The reference contract with the overrides of a YAML mapping (a suite's ``contract:`` block), if given."""
    import yaml
    from pydantic import ValidationError

    from evalkit.config.contract import Contract
    from evalkit.config.suite import describe_validation_error

    if path is None:
        return Contract()
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--contract {file}: file not found (expected a YAML mapping of contract fields, e.g. "
                        "image_input: face)")
    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"--contract {file}: not YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--contract {file}: expected a mapping of contract fields (as a suite's contract: block)")
    try:
        return Contract().with_overrides(data)
    except ValidationError as exc:
        raise UserError(f"--contract {file}: {describe_validation_error(exc)}") from None


def cmd_model_check(args) -> int:
    from evalkit.pipeline.model_check import check_model, format_finding

    result = check_model(Path(args.generator), Path(args.encoder) if args.encoder else None,
                         _contract_from_file(args.contract))
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False))
    else:
        for finding in result.findings:
            print(format_finding(finding))
        failed = sum(not f.ok for f in result.findings)
        print(f"model check: {'passed' if result else f'{failed} finding(s) failed'}")
    return EXIT_OK if result else EXIT_GATE_FAILED


def cmd_crop_boxes(args) -> int:
    from evalkit.report.crop_preview import derive_crop_boxes

    out, sheet, n = derive_crop_boxes(Path(args.landmarks), Path(args.video), Path(args.out),
                                      Path(args.sheet) if args.sheet else None, _contract_from_file(args.contract),
                                      args.samples)
    print(f"{n} crop boxes -> {out}")
    print(sheet)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalkit",
        description="Evaluate audio-driven lip-sync generators exported to ONNX: run the full generation "
        "pipeline (audio -> mel -> audio encoder -> feature windows; video -> face crop -> masked 6-channel "
        "input -> ONNX Runtime -> paste-back -> H.264 MP4) for every model x backend x input of a suite.",
        epilog="Start with `evalkit demo`. Exit codes: 0 ok, 1 a check failed, 2 usage or input error, "
        "3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    parser.add_argument("--ffmpeg", metavar="PATH",
                        help=f"ffmpeg binary to use (default: ${FFMPEG_ENV}, else the one imageio-ffmpeg ships)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="build the fixtures if missing and run suites/demo.yaml",
                          description="Build evalkit's own fixtures (a drawn talking head, speech-like audio and "
                          "fixture ONNX models) if they are missing, run suites/demo.yaml on them, and print the "
                          "run folder. Needs no file from outside.")
    demo.add_argument("--out", metavar="DIR", help="where the run folder goes (default: reports/ of the checkout; "
                      "installed from a wheel: ./reports of the working directory)")
    demo.add_argument("--rebuild-fixtures", action="store_true", help="rebuild the fixtures even if present")
    demo.add_argument("--models", metavar="NAMES", type=_names,
                      help="run only these of the demo's models, comma-separated (e.g. reference,copycat: a quicker "
                      "look; the default runs all six)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a suite", description="Run every model x backend x input of SUITE. "
                         "Writes DIR/<suite-name>/<run-id>/ (run.json, and per run an MP4 and lossless frames) "
                         "and prints that folder's path as the last line.")
    run.add_argument("suite", metavar="SUITE.yaml", nargs="?", help="the suite file (or describe one run with the "
                     "flags below instead)")
    run.add_argument("--out", metavar="DIR", help="output folder (default: the suite's output_dir, else ./reports)")
    run.add_argument("--save-golden", metavar="DIR", help="also save each model x input's raw outputs (first "
                     "parity.frames frames, .npz + golden.json manifest) as a golden set; a suite's `golden: DIR` "
                     "compares later runs with it")
    g = run.add_argument_group("CI outputs (always written when asked; a suite without gates gets one check per "
                               "run: it ran, with finite fidelity and sync metrics)")
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per gate per model x backend x "
                   "input, skipped runs as skipped test cases, totals and times")
    g.add_argument("--summary-md", metavar="FILE", help="write a short Markdown summary, failures first")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary: run_dir, "
                   "gates (or run_checks) with values, skipped and failed runs, passed, exit_code (inf/nan as "
                   "strings)")
    g = run.add_argument_group("execution (each model x backend x input x protocol is one job; the record, parity, "
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
    add_suite_flags(run)
    run.set_defaults(func=cmd_run)

    init = sub.add_parser(
        "init", help="write a commented starter suite for your files",
        description="Write a commented suite file for one model and one input, checking each file as it goes "
        "(it exists, the ONNX files load in ONNX Runtime, the videos decode), then the whole suite as `evalkit "
        "suite check` does. Without files: a starter on evalkit's own fixtures (built when missing). Paths in the "
        "file are relative to it. An existing file is never replaced without --force.")
    init.add_argument("--out", metavar="FILE", help="the suite file to write (default: ./suite.yaml)")
    init.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_suite_flags(init)
    init.set_defaults(func=cmd_init)

    baseline = sub.add_parser("baseline", help="baselines for relative gates")
    bsub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    bset = bsub.add_parser("set", help="export a run as a baseline",
                           description="Copy RUN_DIR's run.json, summary.csv and frames.csv (no videos) to "
                           "DIR/NAME, small enough to commit. A suite's `baseline: NAME` gates later runs against it.")
    bset.add_argument("run_dir", metavar="RUN_DIR")
    bset.add_argument("--name", help="a plain name, not a path (default: the run's suite name)")
    bset.add_argument("--dir", default="baselines", help="default: %(default)s")
    bset.add_argument("--force", action="store_true",
                      help="replace DIR/NAME if it is an existing baseline (anything else there is never replaced)")
    bset.set_defaults(func=cmd_baseline_set)

    compare = sub.add_parser("compare", help="compare two run folders",
                             description="Match two runs by model x backend x input x protocol and write "
                             "comparison.csv (every summary field of A and B, B - A, and B / A for speed), "
                             "comparison.html (what changed first: quality identical or not, speed beyond noise or "
                             "not, raw outputs agreeing or not; then each run's verdict in A and B, the changed "
                             "values, tensor and picture parity of B against A) and side-by-side videos (A | B). "
                             "Prints that headline and the page's path; exit 1 with one line when two runs' "
                             "outputs differ in shape (another model: not comparable output by output).")
    compare.add_argument("run_a", metavar="RUN_A")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--out", metavar="DIR", help="default: compare/<A-id>_vs_<B-id> beside the runs' suite "
                         "folders (<out>/compare/ for runs in <out>/<suite>/<run-id>), whatever the working directory")
    compare.add_argument("--json", action="store_true", help="print one JSON object (output files, the runs "
                         "compared, the speed changes the Mann-Whitney test finds) instead of the page's path")
    compare.set_defaults(func=cmd_compare)

    fixtures = sub.add_parser("fixtures", help="evalkit's own test data",
                              description="Fixtures evalkit builds itself, byte for byte the same on every build.")
    fsub = fixtures.add_subparsers(dest="fixtures_command", metavar="ACTION", required=True)
    fbuild = fsub.add_parser("build", help="build every fixture",
                             description="Build the talking-head clip, the audio, the crop boxes and the fixture "
                             "ONNX models (reference, lag2, noisy, reference_fp16, nan, mobile_unet, audio_encoder, and a "
                             "random-weight SyncNet pair).")
    fbuild.add_argument("--dest", metavar="DIR", help=f"default: ${FIXTURES_ENV}, else data/fixtures/ of a source "
                        "checkout, else the user's cache folder (evalkit/fixtures); now: "
                        f"{default_fixtures_dir()}")
    fbuild.set_defaults(func=cmd_fixtures_build)

    metrics = sub.add_parser("metrics", help="metrics on any videos, outside a suite")
    msub = metrics.add_subparsers(dest="metrics_command", metavar="METRIC", required=True)
    fid = msub.add_parser(
        "fidelity", help="PSNR and SSIM between two videos or frame folders",
        description="Per-frame PSNR (dB; identical frames give inf, counted apart from the mean) and SSIM "
        "(scikit-image's Gaussian definition, sigma 1.5) of CANDIDATE against REFERENCE, frame by frame in order.",
    )
    g = fid.add_argument_group("inputs")
    g.add_argument("--reference", required=True, metavar="REF", help="video file or folder of images (in natural order: 2.png before 10.png)")
    g.add_argument("--candidate", required=True, metavar="CAND", help="video file or folder of images")
    g = fid.add_argument_group("metric")
    g.add_argument("--roi", metavar="x,y,w,h", help="compare only this rectangle (pixels)")
    g.add_argument("--trim", action="store_true",
                   help="compare the first min(N) frames when the counts differ (otherwise an error)")
    g = fid.add_argument_group("output")
    g.add_argument("--json", action="store_true",
                   help="print one JSON object: frames, psnr_mean, psnr_min, psnr_inf_frames, ssim_mean, ssim_min, "
                   "and the per-frame lists psnr and ssim (inf written as the string \"inf\")")
    fid.set_defaults(func=cmd_metrics_fidelity)

    sync = msub.add_parser(
        "sync", help="audio-visual sync offset of a video, with a confidence",
        description="Estimate the lag between the audio's loudness and the mouth's opening. Sign convention: a "
        "POSITIVE offset means the mouth moves AFTER the sound it belongs to (the video lags the audio); +2 at "
        "25 fps is 80 ms late. Confidence = (the best lag's correlation minus the median over all lags) times "
        "sqrt(frames), the peak in units of chance; the estimate is reliable at 7.5 or more, with its peak inside "
        "the search range and audio covering the video (otherwise the reason is printed). Silence or a still "
        "mouth gives no_signal instead of an arbitrary lag. Works at the video's own frame rate.",
    )
    sync.add_argument("video", metavar="VIDEO")
    g = sync.add_argument_group("inputs")
    g.add_argument("--audio", metavar="AUDIO", help="the audio to check against (default: the video's own track)")
    g.add_argument("--roi", metavar="x,y,w,h", help="the mouth region in pixels (default: the whole frame, which "
                   "works only when the mouth is the main thing that moves)")
    g = sync.add_argument_group("metric")
    g.add_argument("--max-offset", type=int, default=15, metavar="N",
                   help="search lags -N..N frames, N >= 1 (default 15)")
    g = sync.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object: offset_frames, offset_ms, "
                   "confidence, fps, no_signal, reliable, reason, note, and the lag curve (lags, curve)")
    sync.set_defaults(func=cmd_metrics_sync)

    field = msub.add_parser(
        "field", help="LMD, identity, CPBD (and LPIPS, FID, FVD with your networks) between two videos",
        description="The talking-head field's metrics of CANDIDATE against REFERENCE, frame by frame: LMD (mean "
        "distance of dlib's 68-point landmarks, mouth points 48-67 and all 68, in pixels of the frame), identity "
        "(dlib's face descriptor distance, below 0.6 the same person) and the mouth opening from landmarks, with "
        "evalkit[face] installed (the detector runs on every reference frame; a frame without a face is reported as "
        "'no face found'); CPBD no-reference sharpness of both; LPIPS, FID and FVD with your own ONNX exports "
        "(docs/field-metrics.md).")
    g = field.add_argument_group("inputs")
    g.add_argument("--reference", required=True, metavar="REF", help="video file or folder of images (the truth)")
    g.add_argument("--candidate", required=True, metavar="CAND", help="video file or folder of images")
    g = field.add_argument_group("metric")
    g.add_argument("--roi", metavar="x,y,w,h", help="CPBD, LPIPS, FID and FVD on this rectangle only (pixels)")
    g.add_argument("--trim", action="store_true",
                   help="compare the first min(N) frames when the counts differ (otherwise an error)")
    g.add_argument("--lpips", metavar="NET.onnx", help="LPIPS feature network (with --lpips-linear)")
    g.add_argument("--lpips-linear", metavar="LIN.npz", help="LPIPS linear weights, one vector per feature map")
    g.add_argument("--fid", metavar="INCEPTION.onnx", help="FID's Inception network")
    g.add_argument("--fvd", metavar="I3D.onnx", help="FVD's I3D network (clips of 16 frames)")
    g.add_argument("--audio", metavar="AUDIO", help="time the candidate's landmark mouth opening against this audio "
                   "(default: the candidate's own sound track, when it is a video with one)")
    g = field.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object with every value and the per-frame "
                   "lists (None where no face was found)")
    field.set_defaults(func=cmd_metrics_field)

    hist = sub.add_parser("history", help="runs recorded over time, with trends",
                          description="Every finished run is recorded in DIR/history.sqlite (DIR: where its run "
                          "folder went). Prints the runs in time order, the chosen fields per model/backend/input, "
                          "and writes an HTML page with a trend per field and the suite's gate limits drawn on it.")
    hist.add_argument("where", nargs="?", metavar="RUN_DIR|SUITE.yaml",
                      help="find the database beside this run folder's runs, or where this suite's runs go (a "
                      "suite file also selects its suite)")
    hist.add_argument("--suite", help="only this suite")
    hist.add_argument("--field", action="append", help="a summary.csv field (repeatable; default for the page: "
                      "psnr_mean, ssim_mean, sync_offset_frames, throughput_fps; the old name fps still reads)")
    hist.add_argument("--db", help="the database (default: found from RUN_DIR or SUITE.yaml; without them "
                      "./reports/history.sqlite)")
    hist.add_argument("--out", metavar="HTML", help="default: history.html beside the database")
    hist.add_argument("--record", metavar="RUN_DIR", action="append", help="add this finished run folder to the "
                      "database beside it (or --db) instead: for a run that could not record itself (a busy "
                      "database); repeatable; recording a run again replaces its entry")
    hist.set_defaults(func=cmd_history)

    sign = sub.add_parser(
        "signoff", help="release sign-off of one model file, and its verification",
        usage="evalkit signoff SUITE.yaml --model MODEL.onnx [--model-name NAME] [--key KEY.pem] [--out DIR]\n"
              "       evalkit signoff --resume RUN_DIR\n"
              "       evalkit signoff verify signoff.json --model MODEL.onnx [--public-key PUB.pem]\n"
              "       evalkit signoff keygen --out DIR",
        description="Run a release suite (its gates are the release criteria) with MODEL as the model, and write "
        "signoff.json and signoff.html into the run folder: the model's and the suite's SHA-256, evalkit's "
        "version, the environment, every criterion with its value and verdict, the overall verdict, and a digest "
        "over the whole record. With --key (an Ed25519 private key, from `keygen`) the record is also signed. "
        "`verify` checks that a record is unaltered and belongs to MODEL; the digest alone proves integrity, not "
        "origin: with --public-key it also checks the signature. Exit 0: PASS / verified; 1: FAIL / not verified.")
    sign.add_argument("target", nargs="?", metavar="SUITE.yaml|verify|keygen")
    sign.add_argument("record", nargs="?", metavar="signoff.json", help="with verify: the record to check")
    sign.add_argument("--model", metavar="MODEL.onnx", help="the model file signed off (or checked)")
    sign.add_argument("--model-name", help="which model of the suite MODEL replaces (needed when it has several)")
    sign.add_argument("--out", metavar="DIR", help="where the run folder goes (default: the suite's output_dir); "
                      "with keygen: where the key pair is written")
    sign.add_argument("--key", metavar="KEY.pem", help="sign the record with this Ed25519 private key (PEM)")
    sign.add_argument("--public-key", metavar="PUB.pem", help="with verify: check the signature with this public key")
    sign.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted sign-off (its .<run-id>.partial "
                      "folder, as the interruption's message names it) into its signoff.json")
    sign.add_argument("--json", action="store_true", help="print one JSON object (verdict, criteria, failures, files; "
                      "with verify: verified, origin_checked, problems)")
    sign.set_defaults(func=cmd_signoff)

    runs = sub.add_parser("runs", help="run folders: the unfinished ones")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    rpartial = rsub.add_parser(
        "partial", help="list (or remove) unfinished run folders",
        description="List the unfinished run folders (.<run-id>.partial: interrupted, or still running) under DIR "
        "(an output folder, or one suite's folder in it), with the time since each last changed and how many of "
        "its combinations finished. Continue one with `evalkit run --resume RUN_DIR`.")
    rpartial.add_argument("dir", nargs="?", default="reports", metavar="DIR", help="default: %(default)s")
    rpartial.add_argument("--remove", action="store_true", help="remove the listed folders whose run has stopped "
                          "(one still running on this machine is kept)")
    rpartial.set_defaults(func=cmd_runs_partial)

    report = sub.add_parser("report", help="re-render summary.csv, frames.csv and report.html of a run",
                            description="Render the views of RUN_DIR/run.json again (after an evalkit upgrade, say).")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(func=cmd_report)

    record = sub.add_parser("record", help="run records (run.json): schema")
    rsub = record.add_subparsers(dest="record_command", metavar="ACTION", required=True)
    rschema = rsub.add_parser("schema", help="print the run record's JSON Schema (run.json, today's version)")
    rschema.set_defaults(func=cmd_record_schema)

    suite = sub.add_parser("suite", help="suite files: schema and validation")
    ssub = suite.add_subparsers(dest="suite_command", metavar="ACTION", required=True)
    schema = ssub.add_parser("schema", help="print the suite JSON Schema (for editor completion)")
    schema.set_defaults(func=cmd_suite_schema)
    check = ssub.add_parser("check", help="validate a suite without running it",
                            description="Parse SUITE.yaml, check every field and that every file it names exists.")
    check.add_argument("suite", metavar="SUITE.yaml")
    check.set_defaults(func=cmd_suite_check)
    model = sub.add_parser("model", help="check an exported model against the contract")
    modsub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mcheck = modsub.add_parser(
        "check", help="does a generator (and its audio encoder) fit the contract?",
        description="Check an ONNX export against the contract: opset, the image and audio inputs (by the "
        "contract's names, else by shape), their shapes (dynamic axes allowed) and float32 types, the output; then "
        "one real frame through both models (synthetic speech -> mel window -> encoder; a drawn face -> 6-channel "
        "crop -> generator): output shape, range [0, 1], NaN/Inf. One line per finding says what to change. Exit 0 "
        "all passed, 1 a finding failed, 2 a file is missing or not an ONNX model.")
    mcheck.add_argument("generator", metavar="G.onnx")
    mcheck.add_argument("encoder", nargs="?", metavar="E.onnx", help="the audio encoder (mel window -> feature row)")
    mcheck.add_argument("--contract", metavar="FILE.yaml", help="contract overrides, as a suite's contract: block "
                        "(e.g. image_input: face, audio_input_shape: [32, 32, 32])")
    mcheck.add_argument("--json", action="store_true", help="print one JSON object: generator, encoder, passed, "
                        "findings (each level, ok, message)")
    mcheck.set_defaults(func=cmd_model_check)

    cboxes = sub.add_parser(
        "crop-boxes", help="crop boxes from landmarks, with a contact sheet of the crops",
        description="Derive the contract's crop boxes from per-frame N.lms landmark files (x1 = landmark 1's x, "
        "x2 = landmark 31's x, y1 = landmark 52's y, square), write them as a box file (one 'x1 y1 x2 y2' line per "
        "frame after a '#' header) and a PNG contact sheet of evenly spaced crops (frame numbers on them; white: "
        "the region the model sees, green: the contract's mouth_box), to check the crop before a long run.")
    cboxes.add_argument("--landmarks", required=True, metavar="DIR", help="folder of 0.lms, 1.lms, ...")
    cboxes.add_argument("--video", required=True, metavar="V", help="the video (or a folder of frame images)")
    cboxes.add_argument("--out", required=True, metavar="boxes.txt", help="the box file to write")
    cboxes.add_argument("--sheet", metavar="PATH.png", help="the contact sheet (default: --out with .png)")
    cboxes.add_argument("--samples", type=int, default=12, metavar="N", help="crops on the sheet (default 12)")
    cboxes.add_argument("--contract", metavar="FILE.yaml", help="contract overrides (landmark indices, crop size)")
    cboxes.set_defaults(func=cmd_crop_boxes)
    _add_verbosity_flags(parser, top=True)
    return parser


def _add_verbosity_flags(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-q / -v on the program and on every command under it (``evalkit -q run ...`` or ``evalkit run -q ...``).

    Below the top level their default is SUPPRESS, so a command's unset flag never hides the program's.
    """
    default = False if top else argparse.SUPPRESS
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="only results and errors (no progress lines or bars)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also debug lines (which files and folders were chosen, and why)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_verbosity_flags(child)


# What to do about an OSError, by errno: the environment is at fault, not evalkit (exit 2).
OS_ERROR_HINTS = {
    errno.ENOENT: "no such file or folder: check the path",
    errno.EACCES: "permission denied: check its permissions or choose another path (e.g. --out DIR)",
    errno.EPERM: "operation not permitted: check its permissions or choose another path (e.g. --out DIR)",
    errno.EROFS: "read-only file system: choose a writable output folder (--out DIR)",
    errno.ENOSPC: "no space left on the device: free some space or choose another output folder (--out DIR)",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder (--out DIR)",
    errno.ENAMETOOLONG: "a file or folder name is too long (at most 255 bytes per path part): shorten it",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?): fix the link",
    errno.ENOTDIR: "a file stands where a folder is expected: move it or choose another path",
    errno.EISDIR: "a folder stands where a file is expected: give a file's path",
    errno.EEXIST: "already exists: remove it or choose another path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.EIO: "input/output error: the disk or network file system failed",
    errno.EXDEV: "cannot move across file systems: put the output folder on the same file system",
}
# Damaged input files raise these from the libraries that read them (JSON, SQLite, .npz).
DAMAGED_INPUT = (UnicodeDecodeError, json.JSONDecodeError, sqlite3.DatabaseError, zipfile.BadZipFile)
_PATH_LOCALS = ("path", "filename", "file", "db", "record_path", "run_dir", "folder", "source", "suite_path")


def _file_in_traceback(exc: BaseException) -> str | None:
    """The innermost evalkit frame's path-like local (``path``, ``db``, ...): the file being read."""
    package = str(Path(__file__).resolve().parent)
    tb, frames = exc.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if not frame.f_code.co_filename.startswith(package):
            continue
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, Path)) and value:
                return str(value)
    return None


def _environment_error(exc: OSError) -> str | None:
    """One line for an OSError about a file or the disk, or None when it doesn't look like one (a bug)."""
    hint = OS_ERROR_HINTS.get(exc.errno)
    if hint is None and not exc.filename:
        return None
    where = exc.filename or _file_in_traceback(exc) or "(unknown file)"
    if exc.filename2:
        where = f"{where} -> {exc.filename2}"
    return f"{os.fsdecode(where)}: {hint or exc.strerror or type(exc).__name__}"


def _stdout_is_broken() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (captured): not a closed pipe
        return False


def _quiet_stdout() -> None:
    """After a closed pipe (``evalkit ... | head``): send what is left to /dev/null, so that Python's flush at
    exit raises nothing (as the Python docs on SIGPIPE recommend)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for a program stopped by a closed pipe
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so that a half-written run folder is removed, never finished."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _run_command(args) -> int:
    """Run the chosen command; library warnings are held back and shown after success, never before an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = args.func(args)
    for w in caught if _verbosity >= NORMAL else ():
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q and -v: give one of them (-q: only results and errors; -v: also debug lines)")
    global _verbosity
    _verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    if args.ffmpeg:
        os.environ[FFMPEG_ENV] = args.ffmpeg
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    bars = os.environ.pop("TQDM_DISABLE", None) if args.quiet else None
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # no progress bars (tqdm's own variable; read by the pipeline too)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return _run_command(args)
    except Terminated as exc:
        _stderr(f"evalkit: terminated ({_interrupted_run(exc)})")
        return EXIT_TERMINATED
    except UserError as exc:
        kept = ""
        if getattr(exc, "partial_run", None) is not None and str(exc.partial_run) not in str(exc):
            kept = f" ({_interrupted_run(exc)})"
        _stderr(f"evalkit: error: {' '.join(str(exc).split())}{kept}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _stderr(f"evalkit: interrupted ({_interrupted_run(exc)})")
        return 130
    except BrokenPipeError as exc:
        if _stdout_is_broken():
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        return _internal_or_environment(exc)
    except OSError as exc:
        return _internal_or_environment(exc)
    except DAMAGED_INPUT as exc:
        where = _file_in_traceback(exc) or "an input file"
        what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "damaged or not the expected format"
        _stderr(f"evalkit: error: {where}: {what} ({' '.join(str(exc).split())}); give an intact file")
        return EXIT_USAGE
    except Exception:
        return _internal_error()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if args.quiet:  # as it was: a later main() in the same process (tests) is not quiet by accident
            os.environ.pop("TQDM_DISABLE", None)
            if bars is not None:
                os.environ["TQDM_DISABLE"] = bars


def _interrupted_run(exc: BaseException) -> str:
    """What an interruption left: nothing, or a .partial run folder with finished combinations to resume."""
    completed = getattr(exc, "completed_run", None)
    if completed is not None:
        return (f"after the run was completed: {completed}, with its history entry and every file asked for; "
                "nothing to resume")
    partial = getattr(exc, "partial_run", None)
    if partial is None:
        return "no run folder was completed"
    finished, total = exc.partial_progress
    stage = getattr(exc, "partial_stage", "combinations")
    if stage in ("combinations", "report"):
        return (f"{finished} of {total} combinations finished and are kept in {partial}"
                + ("; the record and report were not yet written" if stage == "report" else "")
                + f"; continue with: {exc.resume_command}")
    steps = getattr(exc, "finishing_steps", {})
    done = ["the record and report"] + [name for name, made in steps.items() if made]
    missing = [name for name, made in steps.items() if not made] + ["the final name"]

    def words(names: list[str]) -> str:
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    return (f"{finished} of {total} combinations finished; {words(done)} are "
            f"written ({partial}); not yet {words(missing)}; finish with: {exc.resume_command}")


def _internal_or_environment(exc: OSError) -> int:
    line = _environment_error(exc)
    if line is None:
        return _internal_error()
    _stderr(f"evalkit: error: {line}")
    return EXIT_USAGE


def _internal_error() -> int:
    _stderr(traceback.format_exc())
    _stderr("evalkit: internal error (a bug in evalkit; please report it with the traceback above)")
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
