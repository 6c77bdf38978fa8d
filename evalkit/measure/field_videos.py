"""``evalkit metrics field``: the field's metrics between any two videos (or frame folders), outside a suite.

No crop box is known here, so dlib's detector runs on every reference frame (the face it scores highest); both
frames' landmarks are found in that rectangle. A frame where it finds no face is reported as "no face found"
(None in the per-frame lists, its index in ``no_face_frames``), never as a number.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from evalkit.errors import UserError
from evalkit.measure.video_fidelity import open_pair
from evalkit.metrics.cpbd import cpbd
from evalkit.metrics.face import (ALL_POINTS, MOUTH_POINTS, FaceModels, descriptor_distance, face_models_missing,
                                  landmark_distance, mouth_opening_ratio)
from evalkit.metrics.perceptual import FVD_CLIP, FeatureExtractor, FeatureGaussian, Lpips, frechet_of
from evalkit.measure.field import CPBD_SAMPLES, IDENTITY_SAMPLES, identity_frames

NO_FACE = "no face found"
BATCH = 16


def _mean_max(values: list) -> tuple[float | None, float | None]:
    x = np.array([v for v in values if v is not None], np.float64)
    return (float(x.mean()), float(x.max())) if x.size else (None, None)


def field_between(reference: Path, candidate: Path, roi: tuple[int, int, int, int] | None = None,
                  trim: bool = False, lpips: tuple[Path, Path] | None = None, fid: Path | None = None,
                  fvd: Path | None = None, audio: Path | None = None, max_offset: int = 15) -> dict:
    """LMD (mouth, all 68), identity distance, landmark mouth opening, CPBD and optionally LPIPS / FID / FVD of
    ``candidate`` against ``reference``, frame by frame. Landmarks and identity use whole frames; CPBD, LPIPS, FID
    and FVD the ``roi`` (x, y, w, h) or whole frames. With the face extra and a video candidate, the landmarks'
    mouth opening is also timed against ``audio`` (default: the candidate's own sound track, when it has one):
    ``lm_sync`` (frames without a face count as a closed mouth: 0)."""
    ref, cand, n, (x, y, w, h) = open_pair(reference, candidate, roi, trim)
    missing = face_models_missing()
    models = FaceModels.load() if missing is None else None
    lpips_net = Lpips(*lpips) if lpips else None
    fid_net = FeatureExtractor(fid, "FID") if fid else None
    fvd_net = FeatureExtractor(fvd, "FVD") if fvd else None
    identity_at, cpbd_at = set(identity_frames(n, IDENTITY_SAMPLES)), set(identity_frames(n, CPBD_SAMPLES))
    lmd_mouth, lmd_all, opening, identity, no_face = [], [], [], [], []
    cpbd_ref, cpbd_cand, lpips_values = [], [], []
    fid_sets, fvd_sets = (FeatureGaussian(), FeatureGaussian()), (FeatureGaussian(), FeatureGaussian())
    batch: tuple[list, list] = ([], [])
    clip: tuple[list, list] = ([], [])
    previous = None
    with ref.reader() as ref_frames, cand.reader() as cand_frames:
        for i in range(n):
            a, b = next(ref_frames).copy(), next(cand_frames).copy()
            if models is not None:
                found = models.detect(a, upsample=0)
                if not len(found):
                    found = models.detect(a, upsample=1)
                if not len(found):
                    no_face.append(i)
                    lmd_mouth.append(None)
                    lmd_all.append(None)
                    opening.append(None)
                else:
                    rect = _follow(found, previous)
                    previous = rect
                    pa, pb = models.landmarks(a, rect), models.landmarks(b, rect)
                    lmd_mouth.append(float(landmark_distance(pa, pb, MOUTH_POINTS)[0]))
                    lmd_all.append(float(landmark_distance(pa, pb, ALL_POINTS)[0]))
                    opening.append(float(mouth_opening_ratio(pb)[0]))
                    if i in identity_at:
                        identity.append(float(descriptor_distance(models.descriptor(a, rect, pa),
                                                                  models.descriptor(b, rect, pb))[0]))
            ra, rb = a[y : y + h, x : x + w], b[y : y + h, x : x + w]
            if i in cpbd_at:
                cpbd_ref.append(cpbd(ra))
                cpbd_cand.append(cpbd(rb))
            if lpips_net or fid_net:
                batch[0].append(ra)
                batch[1].append(rb)
                if len(batch[0]) == BATCH or i == n - 1:
                    sa, sb = np.stack(batch[0]), np.stack(batch[1])
                    if lpips_net:
                        lpips_values += lpips_net(sa, sb).tolist()
                    if fid_net:
                        fid_sets[0].add(fid_net.frames(sa))
                        fid_sets[1].add(fid_net.frames(sb))
                    batch = ([], [])
            if fvd_net:
                clip[0].append(ra)
                clip[1].append(rb)
                if len(clip[0]) == FVD_CLIP:
                    fvd_sets[0].add(fvd_net.clip(np.stack(clip[0])))
                    fvd_sets[1].add(fvd_net.clip(np.stack(clip[1])))
                    clip = ([], [])
    result: dict = {"reference": str(reference), "candidate": str(candidate), "roi": [x, y, w, h], "frames": n,
                    "face_missing": missing,
                    "cpbd_reference": float(np.nanmean(cpbd_ref)) if np.isfinite(cpbd_ref).any() else None,
                    "cpbd_candidate": float(np.nanmean(cpbd_cand)) if np.isfinite(cpbd_cand).any() else None}
    if models is not None:
        result.update(lmd_mouth_mean=_mean_max(lmd_mouth)[0], lmd_mouth_max=_mean_max(lmd_mouth)[1],
                      lmd_all_mean=_mean_max(lmd_all)[0], identity_mean=_mean_max(identity)[0],
                      identity_max=_mean_max(identity)[1], identity_frames=len(identity), no_face_frames=no_face,
                      lmd_mouth=lmd_mouth, lmd_all=lmd_all, opening=opening)
        result["lm_sync"] = _landmark_sync(cand, candidate, audio, opening, max_offset)
    if lpips_net:
        result["lpips_mean"], result["lpips_max"] = _mean_max(lpips_values)
        result["lpips"] = lpips_values
    if fid_net:
        result.update(fid=_frechet(*fid_sets), fid_samples=fid_sets[0].count)
    if fvd_net:
        result.update(fvd=_frechet(*fvd_sets), fvd_clips=fvd_sets[0].count)
    return result


def _follow(found: np.ndarray, previous) -> np.ndarray:
    """The detected face to measure: the one overlapping the previous frame's most (the same face, not another
    or a false detection that scores higher in one frame), else the best scored."""
    if previous is None:
        return found[0][:4]

    def overlap(rect) -> float:
        w = max(0.0, min(rect[2], previous[2]) - max(rect[0], previous[0]))
        h = max(0.0, min(rect[3], previous[3]) - max(rect[1], previous[1]))
        union = ((rect[2] - rect[0]) * (rect[3] - rect[1]) + (previous[2] - previous[0]) * (previous[3] - previous[1])
                 - w * h)
        return w * h / union if union > 0 else 0.0

    best = max(found, key=lambda row: overlap(row[:4]))
    return best[:4] if overlap(best[:4]) > 0 else found[0][:4]


def _landmark_sync(source, path: Path, audio: Path | None, opening: list, max_offset: int) -> dict | None:
    """The landmark opening's sync against the audio, or None where there is no frame rate or no audio."""
    from evalkit.measure.field import sync_dict
    from evalkit.measure.video_fidelity import read_audio_track
    from evalkit.media.ffmpeg import probe_video
    from evalkit.metrics.sync import audio_envelope
    from evalkit.pipeline.audio import load_audio

    if source.fps is None or not opening or (audio is None and not probe_video(path).has_audio):
        return None
    wav = load_audio(audio, 16000) if audio is not None else read_audio_track(path, 16000)
    n = min(len(opening), int(len(wav) * source.fps / 16000 + 1e-6))
    series = np.array([0.0 if v is None else v for v in opening], np.float64)
    return sync_dict(audio_envelope(wav, 16000, source.fps, n), series, source.fps, max_offset, len(opening))


def _frechet(a: FeatureGaussian, b: FeatureGaussian) -> float | None:
    if a.count < 2 or b.count < 2:
        return None
    value = frechet_of(a, b)
    return None if math.isnan(value) else value


def field_lines(result: dict) -> list[str]:
    """``field_between``'s result in words, one line a metric."""
    x, y, w, h = result["roi"]
    lines = [f"{result['frames']} frames; CPBD, LPIPS, FID and FVD on x={x} y={y} w={w} h={h}"]
    if result["face_missing"]:
        lines.append(f"LMD, identity: not measured: {result['face_missing']}")
    else:
        found = result["frames"] - len(result["no_face_frames"])
        if not found:
            lines.append(f"LMD: {NO_FACE} in any reference frame")
        else:
            lines.append(f"LMD mouth (points 48-67) {result['lmd_mouth_mean']:.3f} px mean, "
                         f"{result['lmd_mouth_max']:.3f} max; all 68 points {result['lmd_all_mean']:.3f} px (pixels of "
                         "the frame)")
            if result["identity_frames"]:
                lines.append(f"identity distance {result['identity_mean']:.3f} mean, {result['identity_max']:.3f} max "
                             f"over {result['identity_frames']} frames (below 0.6: the same person)")
        if result["no_face_frames"]:
            first = ", ".join(map(str, result["no_face_frames"][:10]))
            lines.append(f"{NO_FACE} in {len(result['no_face_frames'])} of {result['frames']} reference frames "
                         f"(frames {first}{', ...' if len(result['no_face_frames']) > 10 else ''})")
    lm = result.get("lm_sync")
    if lm:
        lines.append(f"landmark sync: no signal ({lm['reason']})" if lm["no_signal"] else
                     f"landmark sync: offset {lm['offset_frames']:+d} frames, confidence {lm['confidence']:.2f} ("
                     + ("reliable" if lm["reliable"] else f"UNRELIABLE: {lm['reason']}") + "; + = mouth after sound)")
    for key, label in (("cpbd_reference", "CPBD reference"), ("cpbd_candidate", "CPBD candidate")):
        value = result[key]
        lines.append(f"{label} {value:.3f}" if value is not None else f"{label}: no 64x64 block with edges")
    if "lpips_mean" in result and result["lpips_mean"] is not None:
        lines.append(f"LPIPS {result['lpips_mean']:.4f} mean, {result['lpips_max']:.4f} max")
    if "fid" in result:
        lines.append(f"FID {result['fid']:.3f} ({result['fid_samples']} frames a side)" if result["fid"] is not None
                     else "FID: too few frames")
    if "fvd" in result:
        lines.append(f"FVD {result['fvd']:.3f} ({result['fvd_clips']} clips of {FVD_CLIP} frames a side)"
                     if result["fvd"] is not None else f"FVD: fewer than 2 clips of {FVD_CLIP} frames")
    return lines
