"""Calibrate and check the built-in sync estimator on the real motion clip (../shared/data/real/motion).

Run from the repository root: ``python tests/benchmarks/sync_calibration.py``. Prints:

- how well the mouth signal follows the true opening (Pearson r), with and without stabilisation;
- offset and confidence for the speech shifted by k = -6..6 frames (truth: -2 + k);
- confidences of reversed speech and of unrelated speech (other windows of speech_16k.wav, whose
  first 10.48 s are the motion clip's own speech, circularly wrapped, starting >= 2 s away, and
  those windows reversed), on the whole clip and on 3, 5 and 8 s windows of it;
- the false-alarm rate (unrelated or reversed trials that come out reliable) and the miss rate
  (true-speech trials that are not reliable, or wrong by more than one frame) at the threshold;
- what 3-second cuts of the clip report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from evalkit.pipeline.audio import load_audio
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics.sync import (RELIABLE_CONFIDENCE, audio_envelope, estimate_sync, mouth_opening,
                                  mouth_thumbnails, sync_of_signals)
from evalkit.media.decode import template_frames

SHARED = Path(os.environ.get("EVALKIT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
MOTION = SHARED / "data" / "real" / "motion"
SR, FPS, HOP = 16000, 25.0, 640  # 640 samples a frame at 16 kHz and 25 fps
MOUTH_BOX = np.s_[:, 86:192, 22:269]  # the contract's mouth_box in the 320x320 frames (--roi 22,86,247,106)
UNRELATED_STARTS = np.arange(2.0, 18.9, 0.25)  # s into speech_16k.wav: >= 2 s (50 frames) from the clip's own


def shift_audio(wav: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The motion README's shift: positive k drops the first k frames of audio, pads the end with -60 dBFS noise."""
    pad = (rng.standard_normal(abs(k) * HOP) * 1e-3).astype(np.float32)
    if k >= 0:
        return np.concatenate([wav[k * HOP:], pad])
    return np.concatenate([pad, wav[: len(wav) + k * HOP]])


def mouth_thumbs() -> np.ndarray:
    info = probe_video(MOTION / "face_f000-261.mp4")
    frames = np.stack([f.copy() for _, f in template_frames(info, info.frames)])
    return mouth_thumbnails(frames[MOUTH_BOX])


def unrelated_audio(full: np.ndarray, length: int, start_frame: int) -> list[np.ndarray]:
    """Windows of speech_16k.wav that do not line up with the clip's frames, and the same reversed."""
    out = []
    for start in UNRELATED_STARTS:
        w = np.roll(full, -int(start * SR) - start_frame * HOP)[: length * HOP]
        out += [w, w[::-1].copy()]
    return out


def main() -> int:
    if not MOTION.is_dir():
        print(f"real data not available: {MOTION} is absent (set EVALKIT_SHARED)")
        return 1
    rng = np.random.default_rng(0)
    thumbs = mouth_thumbs()
    truth = np.load(MOTION / "mouth_opening_f000-261.npy").astype(np.float64)
    wav = load_audio(MOTION / "speech_f000-261.wav", SR)
    full = load_audio(SHARED / "data" / "real" / "speech_16k.wav", SR)
    n = len(thumbs)
    opening, _ = mouth_opening(thumbs, FPS)
    print(f"mouth signal vs the true opening: Pearson r {np.corrcoef(opening, truth)[0, 1]:.3f} "
          f"(H.264 mp4, {thumbs.shape[1]}x{thumbs.shape[2]} thumbnails of the mouth box)")

    print(f"\nthreshold: confidence >= {RELIABLE_CONFIDENCE:g} (best r - median r, times sqrt(frames))")
    print("\nspeech shifted by k frames (truth -2 + k), estimate_sync on the whole clip:")
    misses = 0
    for k in range(-6, 7):
        r = estimate_sync(shift_audio(wav, k, rng), SR, thumbs, FPS)
        ok = r.reliable and abs(r.offset_frames - (k - 2)) <= 1
        misses += not ok
        print(f"  k {k:+d}: offset {r.offset_frames:+d} (truth {k - 2:+d}), confidence {r.confidence:5.2f}, "
              f"reliable {r.reliable}")
    print(f"  miss rate {misses}/13")
    reversed_results = [estimate_sync(shift_audio(wav[::-1].copy(), k, rng), SR, thumbs, FPS) for k in range(-6, 7)]
    rc = [r.confidence for r in reversed_results]
    print(f"reversed speech (shifted -6..6): confidence {min(rc):.2f}..{max(rc):.2f}, "
          f"reliable {sum(r.reliable for r in reversed_results)}/13")

    print("\nby clip length (windows of the clip; estimate's mouth signal computed once per window):")
    print("  frames  true: trials  misses  conf min/median | unrelated+reversed: trials  false alarms  conf p95/max")
    for length in (75, 125, 200, n):
        starts = [0] if length == n else list(range(0, n - length + 1, (n - length) // 6))
        true_conf, true_miss, null_conf, alarms, trials = [], 0, [], 0, 0
        for start in starts:
            part = thumbs[start : start + length]
            signal, _ = mouth_opening(part, FPS)
            for k in (-4, 0, 4):
                audio = shift_audio(wav, k, rng)[start * HOP : (start + length) * HOP]
                r = sync_of_signals(audio_envelope(audio, SR, FPS, length), signal, FPS, 15, length)
                true_conf.append(r.confidence)
                true_miss += not (r.reliable and abs(r.offset_frames - (k - 2)) <= 1)
            for audio in unrelated_audio(full, length, start):
                r = sync_of_signals(audio_envelope(audio, SR, FPS, length), signal, FPS, 15, length)
                null_conf.append(r.confidence)
                alarms += r.reliable
                trials += 1
        print(f"  {length:6d}  {len(true_conf):11d}  {true_miss:6d}  {min(true_conf):5.2f}/{np.median(true_conf):5.2f}"
              f"   | {trials:26d}  {alarms:5d} ({alarms / trials:.1%})  "
              f"{np.percentile(null_conf, 95):5.2f}/{max(null_conf):5.2f}")

    print("\n3-second cuts (75 frames) of the unshifted clip, estimate_sync:")
    for start in range(0, n - 75 + 1, 37):
        r = estimate_sync(wav[start * HOP : (start + 75) * HOP], SR, thumbs[start : start + 75], FPS)
        print(f"  frames {start:3d}-{start + 74:3d}: offset {r.offset_frames:+d}, confidence {r.confidence:5.2f}, "
              f"reliable {r.reliable} ({r.reason or 'ok'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
