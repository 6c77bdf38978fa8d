"""`evalkit crop-boxes`: crop boxes from landmarks, with a contact sheet of the crops."""

from __future__ import annotations

from pathlib import Path

from evalkit.commands.common import contract_from_file
from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "crop-boxes", help="crop boxes from landmarks, with a contact sheet of the crops",
        description="Derive the contract's crop boxes from per-frame N.lms landmark files (x1 = landmark 1's x, "
        "x2 = landmark 31's x, y1 = landmark 52's y, square), write them as a box file (one 'x1 y1 x2 y2' line per "
        "frame after a '#' header) and a PNG contact sheet of evenly spaced crops (frame numbers on them; white: "
        "the region the model sees, green: the contract's mouth_box), to check the crop before a long run.")
    parser.add_argument("--landmarks", required=True, metavar="DIR", help="folder of 0.lms, 1.lms, ...")
    parser.add_argument("--video", required=True, metavar="V", help="the video (or a folder of frame images)")
    parser.add_argument("--out", required=True, metavar="boxes.txt", help="the box file to write")
    parser.add_argument("--sheet", metavar="PATH.png", help="the contact sheet (default: --out with .png)")
    parser.add_argument("--samples", type=int, default=12, metavar="N", help="crops on the sheet (default 12)")
    parser.add_argument("--contract", metavar="FILE.yaml", help="contract overrides (landmark indices, crop size)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.report.crop_preview import derive_crop_boxes

    out, sheet, n = derive_crop_boxes(Path(args.landmarks), Path(args.video), Path(args.out),
                                      Path(args.sheet) if args.sheet else None, contract_from_file(args.contract),
                                      args.samples)
    print(f"{n} crop boxes -> {out}")
    print(sheet)
    return EXIT_OK
