"""``evalkit metrics fidelity``: PSNR and SSIM between any two videos or frame folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.errors import UserError
from evalkit.media.frames import open_frames
from evalkit.metrics import psnr, ssim, summarise

BATCH = 16


def open_pair(reference: Path, candidate: Path, roi: tuple[int, int, int, int] | None, trim: bool):
    """Both videos (or frame folders) opened and checked against each other: (reference, candidate, frames to
    compare, (x, y, w, h) of the region, the whole frame without ``roi``); a mismatch is a UserError."""
    ref, cand = open_frames(reference), open_frames(candidate)
    if (ref.width, ref.height) != (cand.width, cand.height):
        raise UserError(f"reference {reference} is {ref.width}x{ref.height}, candidate {candidate} is "
                        f"{cand.width}x{cand.height}: frames of different sizes cannot be compared")
    if ref.frames != cand.frames and not trim:
        raise UserError(f"reference {reference} has {ref.frames} frames, candidate {candidate} has {cand.frames} "
                        f"(pass --trim to compare the first {min(ref.frames, cand.frames)})")
    x, y, w, h = roi or (0, 0, ref.width, ref.height)
    if x + w > ref.width or y + h > ref.height:
        raise UserError(f"--roi {x},{y},{w},{h} reaches outside the {ref.width}x{ref.height} frame")
    return ref, cand, min(ref.frames, cand.frames), (x, y, w, h)


def fidelity_between(reference: Path, candidate: Path, roi: tuple[int, int, int, int] | None = None,
                     trim: bool = False) -> dict:
    """Per-frame PSNR/SSIM of ``candidate`` against ``reference`` (optionally inside ``roi``) and their summary."""
    ref, cand, n, (x, y, w, h) = open_pair(reference, candidate, roi, trim)
    a = np.empty((BATCH, h, w, 3), np.uint8)
    b = np.empty_like(a)
    psnr_values: list[float] = []
    ssim_values: list[float] = []
    with ref.reader() as ref_frames, cand.reader() as cand_frames:
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for j in range(k):
                a[j] = next(ref_frames)[y : y + h, x : x + w]
                b[j] = next(cand_frames)[y : y + h, x : x + w]
            psnr_values += psnr(a[:k], b[:k]).tolist()
            ssim_values += ssim(a[:k], b[:k]).tolist()
    p, s = summarise(psnr_values), summarise(ssim_values)
    return {
        "reference": str(reference), "candidate": str(candidate), "roi": [x, y, w, h], "frames": n,
        "psnr_mean": p["mean"], "psnr_min": p["min"], "psnr_inf_frames": p["inf_count"],
        "ssim_mean": s["mean"], "ssim_min": s["min"], "psnr": psnr_values, "ssim": ssim_values,
    }


def read_audio_track(video: Path, sample_rate: int) -> np.ndarray:
    """The video's own audio stream as mono float32 at ``sample_rate`` (decoded by ffmpeg)."""
    import io
    import subprocess

    import soundfile

    from evalkit.media.ffmpeg import ffmpeg_exe, probe_video

    if not probe_video(video).has_audio:
        raise UserError(f"{video} has no audio stream: pass --audio FILE")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(video), "-map", "0:a:0",
           "-ac", "1", "-ar", str(sample_rate), "-f", "wav", "-"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        why = " ".join(result.stderr.decode(errors="replace").split())[-200:] or "no output"
        raise UserError(f"cannot read the audio stream of {video}: ffmpeg says: {why} (or pass --audio FILE)")
    wav, _ = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    return wav


def sync_of_video(video: Path, audio: Path | None, roi: tuple[int, int, int, int] | None, max_offset: int,
                  sample_rate: int = 16000) -> dict:
    """The built-in sync estimate of ``video`` (its ``roi``, ideally the mouth) against ``audio`` or its own track.

    ``note`` is non-empty when no ``roi`` was given (the estimate needs a mouth region to follow).
    """
    if max_offset < 1:
        raise UserError(f"--max-offset must be at least 1 frame, got {max_offset}")
    from evalkit.pipeline.audio import load_audio
    from evalkit.metrics.sync import MouthTrack, estimate_sync, mouth_thumbnails

    source = open_frames(video)
    if source.fps is None:
        raise UserError(f"{video}: a folder of images has no frame rate; give a video file")
    x, y, w, h = roi or (0, 0, source.width, source.height)
    if x + w > source.width or y + h > source.height:
        raise UserError(f"--roi {x},{y},{w},{h} reaches outside the {source.width}x{source.height} frame")
    wav = load_audio(audio, sample_rate) if audio is not None else read_audio_track(video, sample_rate)
    track = MouthTrack()  # streamed: 3 KB a frame, whatever the video's length
    batch = np.empty((BATCH, h, w, 3), np.uint8)
    with source.reader() as frames:
        k = 0
        for frame in frames:
            batch[k] = frame[y : y + h, x : x + w]
            k += 1
            if k == BATCH:
                track.extend(mouth_thumbnails(batch))
                k = 0
        if k:
            track.extend(mouth_thumbnails(batch[:k]))
    result = estimate_sync(wav, sample_rate, track, source.fps, max_offset).to_dict()
    note = "" if roi else ("no --roi: the whole frame was used; the estimate follows the mouth, so give its region "
                           "(--roi x,y,w,h) unless the mouth is the main thing that moves")
    return {"video": str(video), "audio": str(audio) if audio else "(the video's own audio)", "roi": [x, y, w, h],
            "note": note, **result}
