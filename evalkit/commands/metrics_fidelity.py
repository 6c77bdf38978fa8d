"""`evalkit metrics fidelity`: PSNR and SSIM between two videos or frame folders, outside a suite."""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser(
           "fidelity", help="PSNR and SSIM between two videos or frame folders",
           description="Per-frame PSNR (dB; identical frames give inf, counted apart from the mean) and SSIM "
           "(scikit-image's Gaussian definition, sigma 1.5) of CANDIDATE against REFERENCE, frame by frame in order.",
    )
    g = parser.add_argument_group("inputs")
    g.add_argument("--reference", required=True, metavar="REF", help="video file or folder of images (in natural order: 2.png before 10.png)")
    g.add_argument("--candidate", required=True, metavar="CAND", help="video file or folder of images")
    g = parser.add_argument_group("metric")
    g.add_argument("--roi", metavar="x,y,w,h", help="compare only this rectangle (pixels)")
    g.add_argument("--trim", action="store_true",
                   help="compare the first min(N) frames when the counts differ (otherwise an error)")
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true",
                   help="print one JSON object: frames, psnr_mean, psnr_min, psnr_inf_frames, ssim_mean, ssim_min, "
                   "and the per-frame lists psnr and ssim (inf written as the string \"inf\")")
    parser.set_defaults(func=run)


def run(args) -> int:
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
