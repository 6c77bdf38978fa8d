"""`evalkit metrics sync`: the audio-visual sync offset of a video, with a confidence."""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import EXIT_OK, UserError


def add_parser(sub) -> None:
    parser = sub.add_parser(
          "sync", help="audio-visual sync offset of a video, with a confidence",
          description="Estimate the lag between the audio's loudness and the mouth's opening. Sign convention: a "
          "POSITIVE offset means the mouth moves AFTER the sound it belongs to (the video lags the audio); +2 at "
          "25 fps is 80 ms late. Confidence = (the best lag's correlation minus the median over all lags) times "
          "sqrt(frames), the peak in units of chance; the estimate is reliable at 7.5 or more, with its peak inside "
          "the search range and audio covering the video (otherwise the reason is printed). Silence or a still "
          "mouth gives no_signal instead of an arbitrary lag. Works at the video's own frame rate.",
    )
    parser.add_argument("video", metavar="VIDEO")
    g = parser.add_argument_group("inputs")
    g.add_argument("--audio", metavar="AUDIO", help="the audio to check against (default: the video's own track)")
    g.add_argument("--roi", metavar="x,y,w,h", help="the mouth region in pixels (default: the whole frame, which "
                   "works only when the mouth is the main thing that moves)")
    g = parser.add_argument_group("metric")
    g.add_argument("--max-offset", type=int, default=15, metavar="N",
                   help="search lags -N..N frames, N >= 1 (default 15)")
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON object: offset_frames, offset_ms, "
                   "confidence, fps, no_signal, reliable, reason, note, and the lag curve (lags, curve)")
    parser.set_defaults(func=run)


def run(args) -> int:
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
