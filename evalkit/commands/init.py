"""`evalkit init`: write a commented starter suite for the user's files (or evalkit's fixtures), checked as it
is made."""

from __future__ import annotations

import os
from pathlib import Path

from evalkit.commands.common import progress
from evalkit.config.suite_flags import INPUT_FILE_FLAGS, add_suite_flags, flag_words
from evalkit.errors import EXIT_OK, UserError
from evalkit.locations import default_fixtures_dir


def add_parser(sub) -> None:
    parser = sub.add_parser(
          "init", help="write a commented starter suite for your files",
          description="Write a commented suite file for one model and one input, checking each file as it goes "
          "(it exists, the ONNX files load in ONNX Runtime, the videos decode), then the whole suite as `evalkit "
          "suite check` does. Without files: a starter on evalkit's own fixtures (built when missing). Paths in the "
          "file are relative to it. An existing file is never replaced without --force.")
    parser.add_argument("--out", metavar="FILE", help="the suite file to write (default: ./suite.yaml)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_suite_flags(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
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
        if any(getattr(args, f, None) for f in ("audio_encoder", *INPUT_FILE_FLAGS)):
            raise UserError("--generator G.onnx is missing: give it with the other files, or no file at all for a "
                            "starter on evalkit's own fixtures")
        _use_fixtures(args)
    folder = out.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    data = suite_data(args, relative_to=folder)
    check_files(data, folder, progress)
    origin = ("Written by `evalkit init` on evalkit's own fixtures: replace them with your files." if starter else
              "Written by `evalkit init` for " + " ".join(flag_words(args)) + ".")
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
    progress(f"wrote {out}: suite '{s.name}', passes `evalkit suite check`; run it with `evalkit run {out}`")
    print(out)
    return EXIT_OK


def _use_fixtures(args) -> None:
    """No files given to init: the starter names evalkit's fixtures (built when missing)."""
    from evalkit.fixtures.build import build_fixtures, fixtures_ready

    fixtures = default_fixtures_dir()
    if not fixtures_ready(fixtures):
        progress(f"no files given: building evalkit's fixtures into {fixtures} for the starter suite ...")
        build_fixtures(fixtures)
    progress(f"no files given: the starter suite uses evalkit's fixtures in {fixtures}; replace them with yours")
    args.generator = str(fixtures / "models" / "reference.onnx")
    args.audio_encoder = str(fixtures / "models" / "audio_encoder.onnx")
    args.video = args.ground_truth = str(fixtures / "clip" / "talking_head.mkv")
    args.audio = str(fixtures / "clip" / "speech.wav")
    args.crop_boxes = str(fixtures / "clip" / "crop_boxes.txt")
