"""`evalkit metrics field`: the field's metrics (LMD, identity, CPBD; LPIPS, FID, FVD with your networks)
between two videos."""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import EXIT_OK, UserError


def add_parser(sub) -> None:
    parser = sub.add_parser(
         "field", help="LMD, identity, CPBD (and LPIPS, FID, FVD with your networks) between two videos",
         description="The talking-head field's metrics of CANDIDATE against REFERENCE, frame by frame: LMD (mean "
         "distance of dlib's 68-point landmarks, mouth points 48-67 and all 68, in pixels of the frame), identity "
         "(dlib's face descriptor distance, below 0.6 the same person) and the mouth opening from landmarks, with "
         "evalkit[face] installed (the detector runs on every reference frame; a frame without a face is reported as "
         "'no face found'); CPBD no-reference sharpness of both; LPIPS, FID and FVD with your own ONNX exports "
         "(docs/field-metrics.md).")
    g = parser.add_argument_group("inputs")
    g.add_argument("--reference", required=True, metavar="REF", help="video file or folder of images (the truth)")
    g.add_argument("--candidate", required=True, metavar="CAND", help="video file or folder of images")
    g = parser.add_argument_group("metric")
    g.add_argument("--roi", metavar="x,y,w,h", help="CPBD, LPIPS, FID and FVD on this rectangle only (pixels)")
    g.add_argument("--trim", action="store_true",
                   help="compare the first min(N) frames when the counts differ (otherwise an error)")
    g.add_argument("--lpips", metavar="NET.onnx", help="LPIPS feature network (with --lpips-linear)")
    g.add_argument("--lpips-linear", metavar="LIN.npz", help="LPIPS linear weights, one vector per feature map")
    g.add_argument("--fid", metavar="INCEPTION.onnx", help="FID's Inception network")
    g.add_argument("--fvd", metavar="I3D.onnx", help="FVD's I3D network (clips of 16 frames)")
    g.add_argument("--audio", metavar="AUDIO", help="time the candidate's landmark mouth opening against this audio "
                   "(default: the candidate's own sound track, when it is a video with one)")
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object with every value and the per-frame "
                   "lists (None where no face was found)")
    parser.set_defaults(func=run)


def run(args) -> int:
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
