"""`evalkit fixtures build`: build evalkit's own fixtures (clip, audio, crop boxes, fixture models)."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import debug, progress
from evalkit.errors import EXIT_OK
from evalkit.locations import FIXTURES_ENV, default_fixtures_dir, source_checkout


def add_parser(sub) -> None:
    parser = sub.add_parser("build", help="build every fixture",
                             description="Build the talking-head clip, the audio, the crop boxes and the fixture "
                             "ONNX models (reference, lag2, noisy, reference_fp16, nan, mobile_unet, audio_encoder, "
                             "and a "
                             "random-weight SyncNet pair).")
    parser.add_argument("--dest", metavar="DIR", help=f"default: ${FIXTURES_ENV}, else data/fixtures/ of a source "
                        "checkout, else the user's cache folder (evalkit/fixtures); now: "
                        f"{default_fixtures_dir()}")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.fixtures.build import build_fixtures

    dest = Path(args.dest).expanduser().resolve() if args.dest else default_fixtures_dir()
    debug(f"fixtures folder: --dest, else ${FIXTURES_ENV}, else data/fixtures of a checkout, else the user's cache "
           f"(this evalkit runs from {source_checkout() or 'an installed package'})")
    progress(f"building fixtures into {dest} ...")
    manifest = build_fixtures(dest)
    progress(f"wrote the fixtures into {dest}")
    for name, facts in manifest["files"].items():
        print(f"{facts['sha256'][:16]}  {facts['bytes']:>10,d}  {name}")
    print(dest)
    return EXIT_OK
