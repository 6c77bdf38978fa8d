"""`evalkit signoff`: release sign-off of one model file (keygen, verify, --resume)."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import failure_line, failures, progress, stderr
from evalkit.errors import EXIT_GATE_FAILED, EXIT_INTERNAL, EXIT_OK, UserError


def add_parser(sub) -> None:
    parser = sub.add_parser(
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
    parser.add_argument("target", nargs="?", metavar="SUITE.yaml|verify|keygen")
    parser.add_argument("record", nargs="?", metavar="signoff.json", help="with verify: the record to check")
    parser.add_argument("--model", metavar="MODEL.onnx", help="the model file signed off (or checked)")
    parser.add_argument("--model-name", help="which model of the suite MODEL replaces (needed when it has several)")
    parser.add_argument("--out", metavar="DIR", help="where the run folder goes (default: the suite's output_dir); "
                        "with keygen: where the key pair is written")
    parser.add_argument("--key", metavar="KEY.pem", help="sign the record with this Ed25519 private key (PEM)")
    parser.add_argument("--public-key", metavar="PUB.pem", help="with verify: check the signature with this public key")
    parser.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted sign-off (its .<run-id>.partial "
                        "folder, as the interruption's message names it) into its signoff.json")
    parser.add_argument("--json", action="store_true", help="print one JSON object (verdict, criteria, failures, "
                        "files; with verify: verified, origin_checked, problems)")
    parser.set_defaults(func=run)


def run(args) -> int:
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
        run_dir = resume_run(Path(args.resume), log=progress, warn=stderr)
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
        run_dir = run_suite(loaded, out=Path(args.out) if args.out else None, log=progress, finishing=finishing,
                            warn=stderr)
    run = load_run(run_dir)
    json_path, html_path = run_dir / signoff.SIGNOFF_JSON, run_dir / signoff.SIGNOFF_HTML
    record = signoff.read_signoff(json_path)
    model = record["model"]["path"]
    private_key = record.get("signature")
    failed = [g for g in record["criteria"] if not g["passed"]]
    failed_runs, bug = failures(run)
    # a bug's verdict is FAIL, but the cause is evalkit's, not the model's: exit 3, and its error line
    code = EXIT_INTERNAL if bug else EXIT_OK if record["verdict"] == "PASS" else EXIT_GATE_FAILED
    for e in failed_runs:
        if e["bug"]:
            stderr(failure_line(e))
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
