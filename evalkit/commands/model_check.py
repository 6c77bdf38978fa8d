"""`evalkit model check`: does an exported generator (and its audio encoder) fit the contract?"""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.commands.common import contract_from_file
from evalkit.errors import EXIT_GATE_FAILED, EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "check", help="does a generator (and its audio encoder) fit the contract?",
        description="Check an ONNX export against the contract: opset, the image and audio inputs (by the "
        "contract's names, else by shape), their shapes (dynamic axes allowed) and float32 types, the output; then "
        "one real frame through both models (synthetic speech -> mel window -> encoder; a drawn face -> 6-channel "
        "crop -> generator): output shape, range [0, 1], NaN/Inf. One line per finding says what to change. Exit 0 "
        "all passed, 1 a finding failed, 2 a file is missing or not an ONNX model.")
    parser.add_argument("generator", metavar="G.onnx")
    parser.add_argument("encoder", nargs="?", metavar="E.onnx", help="the audio encoder (mel window -> feature row)")
    parser.add_argument("--contract", metavar="FILE.yaml", help="contract overrides, as a suite's contract: block "
                        "(e.g. image_input: face, audio_input_shape: [32, 32, 32])")
    parser.add_argument("--json", action="store_true", help="print one JSON object: generator, encoder, passed, "
                        "findings (each level, ok, message)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.pipeline.model_check import check_model, format_finding

    result = check_model(Path(args.generator), Path(args.encoder) if args.encoder else None,
                         contract_from_file(args.contract))
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False))
    else:
        for finding in result.findings:
            print(format_finding(finding))
        failed = sum(not f.ok for f in result.findings)
        print(f"model check: {'passed' if result else f'{failed} finding(s) failed'}")
    return EXIT_OK if result else EXIT_GATE_FAILED
