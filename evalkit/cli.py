"""The ``evalkit`` command line.

Exit codes: 0 success, 1 a check failed (a gate, or a required backend
missing), 2 usage or input error (one line saying what and where; a missing
baseline too), 3 internal error (a bug in evalkit: please report it with the
traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from evalkit import __version__
from evalkit.errors import EXIT_GATE_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UserError
from evalkit.ffmpeg_binary import FFMPEG_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_SUITE = PROJECT_ROOT / "suites" / "demo.yaml"
FIXTURES_DIR = PROJECT_ROOT / "data" / "fixtures"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_fixtures_build(args) -> int:
    from evalkit.fixtures.build import build_fixtures

    dest = Path(args.dest)
    _stderr(f"building fixtures into {dest} ...")
    manifest = build_fixtures(dest)
    for name, facts in manifest["files"].items():
        print(f"{facts['sha256'][:16]}  {facts['bytes']:>10,d}  {name}")
    print(dest)
    return EXIT_OK


def cmd_suite_schema(args) -> int:
    from evalkit.suite import suite_json_schema

    print(suite_json_schema())
    return EXIT_OK


def cmd_suite_check(args) -> int:
    from evalkit.suite import load_suite

    loaded = load_suite(Path(args.suite))
    s = loaded.suite
    print(f"{loaded.path}: valid suite '{s.name}': {len(s.models)} models x {len(s.backends)} backends x "
          f"{len(s.inputs)} inputs = {len(s.models) * len(s.backends) * len(s.inputs)} runs")
    return EXIT_OK


def _run(suite_path: Path, out: Path | None, save_golden: Path | None = None, junit: Path | None = None,
         summary_md: Path | None = None) -> int:
    from evalkit.gates import GateResult, junit_xml, summary_markdown, summary_text
    from evalkit.record import load_run
    from evalkit.run import run_suite
    from evalkit.suite import load_suite

    loaded = load_suite(suite_path)
    run_dir = run_suite(loaded, out=out, log=_stderr, save_golden_to=save_golden)
    record = load_run(run_dir)
    code = EXIT_OK
    if "gates" in record:
        results = [GateResult(**g) for g in record["gates"]]
        print(summary_text(results))
        if junit:
            _write_text(junit, junit_xml(loaded.suite.name, results))
        if summary_md:
            _write_text(summary_md, summary_markdown(loaded.suite.name, str(run_dir), results))
        code = EXIT_OK if all(results) else EXIT_GATE_FAILED
    print(run_dir)
    return code


def _write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cmd_run(args) -> int:
    return _run(Path(args.suite), Path(args.out) if args.out else None,
                Path(args.save_golden) if args.save_golden else None,
                Path(args.junit) if args.junit else None, Path(args.summary_md) if args.summary_md else None)


def cmd_demo(args) -> int:
    from evalkit.fixtures.build import build_fixtures, fixtures_ready

    if not DEMO_SUITE.is_file():
        raise UserError(
            f"the demo needs evalkit's source checkout (no {DEMO_SUITE}): clone the repository and "
            "`pip install -e .` there"
        )
    if args.rebuild_fixtures or not fixtures_ready(FIXTURES_DIR):
        _stderr(f"building the demo fixtures into {FIXTURES_DIR} (once, about half a minute) ...")
        build_fixtures(FIXTURES_DIR)
    _stderr(f"running {DEMO_SUITE} ...")
    return _run(DEMO_SUITE, Path(args.out) if args.out else None)


def cmd_metrics_fidelity(args) -> int:
    import json

    from evalkit.compare_videos import fidelity_between
    from evalkit.frames_io import parse_roi
    from evalkit.record import json_safe

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

    from evalkit.compare_videos import sync_of_video
    from evalkit.frames_io import parse_roi

    result = sync_of_video(Path(args.video), Path(args.audio) if args.audio else None, parse_roi(args.roi),
                           args.max_offset)
    if args.json:
        print(json.dumps(result))
    elif result["no_signal"]:
        print(f"no sync signal: {result['reason']}")
    else:
        print(f"offset {result['offset_frames']:+d} frames ({result['offset_ms']:+.1f} ms at {result['fps']:g} fps), "
              f"confidence {result['confidence']:.3f}")
        print("positive: the mouth moves after the sound it belongs to (the video lags the audio)")
    return EXIT_OK


def cmd_baseline_set(args) -> int:
    from evalkit.baseline import set_baseline

    print(set_baseline(Path(args.run_dir), args.name, Path(args.dir)))
    return EXIT_OK


def cmd_history(args) -> int:
    from evalkit import history

    db = Path(args.db)
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


def cmd_signoff(args) -> int:
    from evalkit import signoff

    if args.target == "verify":
        if not args.record or not args.model:
            raise UserError("usage: evalkit signoff verify signoff.json --model MODEL.onnx")
        problems = signoff.verify_signoff(Path(args.record), Path(args.model))
        for problem in problems:
            print(f"FAILED: {problem}")
        if not problems:
            print(f"verified: {args.record} is unaltered and signs off {args.model}")
        return EXIT_GATE_FAILED if problems else EXIT_OK
    from evalkit.run import run_suite
    from evalkit.suite import load_suite

    if not args.model or args.record:
        raise UserError("usage: evalkit signoff SUITE.yaml --model MODEL.onnx [--model-name NAME] [--out DIR]")
    loaded = signoff.with_model(load_suite(Path(args.target)), Path(args.model), args.model_name)
    run_dir = run_suite(loaded, out=Path(args.out) if args.out else None, log=_stderr)
    record = signoff.build_signoff(loaded, Path(args.model), run_dir)
    json_path, html_path = signoff.write_signoff(record, run_dir)
    failed = [g for g in record["criteria"] if not g["passed"]]
    print(f"sign-off {record['verdict']}: {len(record['criteria']) - len(failed)} of {len(record['criteria'])} "
          f"criteria passed for {args.model}")
    for g in failed:
        print(f"  FAIL  {g['model']}/{g['backend']}/{g['input']}  {g['gate']}: {g['message']}")
    print(html_path)
    print(json_path)
    return EXIT_OK if record["verdict"] == "PASS" else EXIT_GATE_FAILED


def cmd_compare(args) -> int:
    from evalkit.compare_runs import compare_runs

    a, b = Path(args.run_a), Path(args.run_b)
    out = Path(args.out) if args.out else Path("reports") / "compare" / f"{a.name}_vs_{b.name}"
    compare_runs(a, b, out)
    print(out / "comparison.html")
    return EXIT_OK


def cmd_report(args) -> int:
    from evalkit.record import load_run
    from evalkit.report import render_run

    run_dir = Path(args.run_dir)
    render_run(run_dir, load_run(run_dir), log=_stderr)
    print(run_dir / "report.html")
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
    demo.add_argument("--out", metavar="DIR", help="where the run folder goes (default: reports/ of the checkout)")
    demo.add_argument("--rebuild-fixtures", action="store_true", help="rebuild the fixtures even if present")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a suite", description="Run every model x backend x input of SUITE. "
                         "Writes DIR/<suite-name>/<run-id>/ (run.json, and per run an MP4 and lossless frames) "
                         "and prints that folder's path as the last line.")
    run.add_argument("suite", metavar="SUITE.yaml")
    run.add_argument("--out", metavar="DIR", help="output folder (default: the suite's output_dir, else ./reports)")
    run.add_argument("--save-golden", metavar="DIR", help="also save each model x input's raw outputs (first "
                     "parity.frames frames, .npz + golden.json manifest) as a golden set; a suite's `golden: DIR` "
                     "compares later runs with it")
    g = run.add_argument_group("CI outputs (when the suite has gates)")
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per gate per model x backend x input")
    g.add_argument("--summary-md", metavar="FILE", help="write a short Markdown summary, failures first")
    run.set_defaults(func=cmd_run)

    baseline = sub.add_parser("baseline", help="baselines for relative gates")
    bsub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    bset = bsub.add_parser("set", help="export a run as a baseline",
                           description="Copy RUN_DIR's run.json, summary.csv and frames.csv (no videos) to "
                           "DIR/NAME, small enough to commit. A suite's `baseline: NAME` gates later runs against it.")
    bset.add_argument("run_dir", metavar="RUN_DIR")
    bset.add_argument("--name", help="default: the run's suite name")
    bset.add_argument("--dir", default="baselines", help="default: %(default)s")
    bset.set_defaults(func=cmd_baseline_set)

    compare = sub.add_parser("compare", help="compare two run folders",
                             description="Match two runs by model x backend x input and write comparison.csv "
                             "(every summary field of A and B, B - A, and B / A for speed), comparison.html (with "
                             "tensor and picture parity of B against A) and side-by-side videos (A | B).")
    compare.add_argument("run_a", metavar="RUN_A")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--out", metavar="DIR", help="default: reports/compare/<A-id>_vs_<B-id>")
    compare.set_defaults(func=cmd_compare)

    fixtures = sub.add_parser("fixtures", help="evalkit's own test data",
                              description="Fixtures evalkit builds itself, byte for byte the same on every build.")
    fsub = fixtures.add_subparsers(dest="fixtures_command", metavar="ACTION", required=True)
    fbuild = fsub.add_parser("build", help="build every fixture",
                             description="Build the talking-head clip, the audio, the crop boxes and the fixture "
                             "ONNX models (reference, lag2, noisy, reference_fp16, nan, mobile_unet, audio_encoder, and a "
                             "random-weight SyncNet pair).")
    fbuild.add_argument("--dest", metavar="DIR", default=str(FIXTURES_DIR), help="default: %(default)s")
    fbuild.set_defaults(func=cmd_fixtures_build)

    metrics = sub.add_parser("metrics", help="metrics on any videos, outside a suite")
    msub = metrics.add_subparsers(dest="metrics_command", metavar="METRIC", required=True)
    fid = msub.add_parser(
        "fidelity", help="PSNR and SSIM between two videos or frame folders",
        description="Per-frame PSNR (dB; identical frames give inf, counted apart from the mean) and SSIM "
        "(scikit-image's Gaussian definition, sigma 1.5) of CANDIDATE against REFERENCE, frame by frame in order.",
    )
    g = fid.add_argument_group("inputs")
    g.add_argument("--reference", required=True, metavar="REF", help="video file or folder of images (sorted by name)")
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
        "25 fps is 80 ms late. Confidence = the best lag's correlation minus the median over all lags; silence or "
        "a still mouth gives no_signal instead of an arbitrary lag. Works at the video's own frame rate.",
    )
    sync.add_argument("video", metavar="VIDEO")
    g = sync.add_argument_group("inputs")
    g.add_argument("--audio", metavar="AUDIO", help="the audio to check against (default: the video's own track)")
    g.add_argument("--roi", metavar="x,y,w,h", help="the mouth region in pixels (default: the whole frame, which "
                   "works only when the mouth is the main thing that moves)")
    g = sync.add_argument_group("metric")
    g.add_argument("--max-offset", type=int, default=15, metavar="N", help="search lags -N..N frames (default 15)")
    g = sync.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object: offset_frames, offset_ms, "
                   "confidence, fps, no_signal, reason, and the lag curve (lags, curve)")
    sync.set_defaults(func=cmd_metrics_sync)

    hist = sub.add_parser("history", help="runs recorded over time, with trends",
                          description="Every finished run is recorded in DIR/history.sqlite (DIR: where its run "
                          "folder went). Prints the runs in time order, the chosen fields per model/backend/input, "
                          "and writes an HTML page with a trend per field and the suite's gate limits drawn on it.")
    hist.add_argument("--suite", help="only this suite")
    hist.add_argument("--field", action="append", help="a summary.csv field (repeatable; default for the page: "
                      "psnr_mean, ssim_mean, sync_offset_frames, fps)")
    hist.add_argument("--db", default="reports/history.sqlite", help="default: %(default)s")
    hist.add_argument("--out", metavar="HTML", help="default: history.html beside the database")
    hist.set_defaults(func=cmd_history)

    sign = sub.add_parser(
        "signoff", help="release sign-off of one model file, and its verification",
        usage="evalkit signoff SUITE.yaml --model MODEL.onnx [--model-name NAME] [--out DIR]\n"
              "       evalkit signoff verify signoff.json --model MODEL.onnx",
        description="Run a release suite (its gates are the release criteria) with MODEL as the model, and write "
        "signoff.json and signoff.html into the run folder: the model's and the suite's SHA-256, evalkit's "
        "version, the environment, every criterion with its value and verdict, the overall verdict, and a digest "
        "over the whole record. `verify` checks that a record is unaltered and belongs to MODEL. Exit 0: PASS / "
        "verified; 1: FAIL / not verified.")
    sign.add_argument("target", metavar="SUITE.yaml|verify")
    sign.add_argument("record", nargs="?", metavar="signoff.json", help="with verify: the record to check")
    sign.add_argument("--model", metavar="MODEL.onnx", help="the model file signed off (or checked)")
    sign.add_argument("--model-name", help="which model of the suite MODEL replaces (needed when it has several)")
    sign.add_argument("--out", metavar="DIR", help="where the run folder goes (default: the suite's output_dir)")
    sign.set_defaults(func=cmd_signoff)

    report = sub.add_parser("report", help="re-render summary.csv, frames.csv and report.html of a run",
                            description="Render the views of RUN_DIR/run.json again (after an evalkit upgrade, say).")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(func=cmd_report)

    suite = sub.add_parser("suite", help="suite files: schema and validation")
    ssub = suite.add_subparsers(dest="suite_command", metavar="ACTION", required=True)
    schema = ssub.add_parser("schema", help="print the suite JSON Schema (for editor completion)")
    schema.set_defaults(func=cmd_suite_schema)
    check = ssub.add_parser("check", help="validate a suite without running it",
                            description="Parse SUITE.yaml, check every field and that every file it names exists.")
    check.add_argument("suite", metavar="SUITE.yaml")
    check.set_defaults(func=cmd_suite_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ffmpeg:
        os.environ[FFMPEG_ENV] = args.ffmpeg
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UserError as exc:
        _stderr(f"evalkit: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _stderr("evalkit: interrupted (no run folder was completed)")
        return 130
    except Exception:
        _stderr(traceback.format_exc())
        _stderr("evalkit: internal error (a bug in evalkit; please report it with the traceback above)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
