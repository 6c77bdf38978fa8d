"""Calibrate and check the built-in sync estimator on every real clip of ../shared/data/real, per clip.

Run from the repository root: ``python tests/benchmarks/sync_calibration.py [--json FILE]``. The clips: the
motion clip (262 frames) and faces/face1, faces/face4 (523 frames): the same person and speech warped from
different real crops (face4's open mouth shows its teeth), and a drawn mouth (flat polygons) moved by face1's
real landmarks. The truth for each: the speech shifted by k frames reads -2 + k. Prints, per clip:

- how well the mouth signal follows the true opening (Pearson r);
- offset and confidence for the speech shifted by k = -6..6 frames on the whole clip, and on 5 s and 8 s
  windows of it (k in -4, 0, 4): how many read within one frame of the truth and how many are reliable;
- the null: reversed speech (shifted -6..6) and unrelated speech (other parts of speech_16k.wav, at least
  2 s from alignment, forwards and reversed) at every length: confidences and false alarms (reliable ones);
- the video-to-video lag: the clip against itself delayed by 0, 2, -3 frames (true) and against itself
  reversed or rolled by half its length (null).
Then the table docs/sync.md shows (its calibration, per clip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from evalkit.media.decode import template_frames
from evalkit.media.ffmpeg import probe_video
from evalkit.metrics.sync import (RELIABLE_CONFIDENCE, VIDEO_LAG_RELIABLE_CONFIDENCE, MouthTrack, audio_envelope,
                                  mouth_thumbnails, sync_of_signals, video_lag)
from evalkit.pipeline.audio import load_audio

SHARED = Path(os.environ.get("EVALKIT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
REAL = SHARED / "data" / "real"
SR, FPS, HOP = 16000, 25.0, 640  # 640 samples a frame at 16 kHz and 25 fps
MOUTH_BOX = np.s_[86:192, 22:269]  # the contract's mouth_box in the 320x320 frames (--roi 22,86,247,106)
CLIPS = {
    "motion": ("motion/face_f000-261.mp4", "motion/mouth_opening_f000-261.npy", "motion/speech_f000-261.wav"),
    "face1": ("faces/face1.mp4", "faces/face1_opening.npy", None),
    "face4": ("faces/face4.mp4", "faces/face4_opening.npy", None),
    "drawn (face1's landmarks)": (None, "faces/face1_opening.npy", None),
}
LENGTHS = {"5 s": 125, "8 s": 200}


def shift_audio(wav: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The READMEs' shift: positive k drops the first k frames of audio, pads the end with -60 dBFS noise."""
    pad = (rng.standard_normal(abs(k) * HOP) * 1e-3).astype(np.float32)
    if k >= 0:
        return np.concatenate([wav[k * HOP:], pad])
    return np.concatenate([pad, wav[: len(wav) + k * HOP]])


def thumbnails_of(name: str) -> np.ndarray:
    video = CLIPS[name][0]
    if video is None:  # the drawn mouth, as tests/metrics/test_sync_real.py draws it
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.metrics.test_sync_real import drawn_mouth_frames

        landmarks = np.load(REAL / "faces" / "face1_landmarks320.npy")
        return mouth_thumbnails(drawn_mouth_frames(landmarks)[:, 86:192, 22:269])
    info = probe_video(REAL / video)
    return mouth_thumbnails(np.stack([f[MOUTH_BOX].copy() for _, f in template_frames(info, info.frames)]))


def null_audio(full: np.ndarray, length: int, start_frame: int, clip_frames: int) -> list[np.ndarray]:
    """Parts of speech_16k.wav at least 2 s (50 frames) from the clip's own alignment, and the same reversed."""
    out = []
    for offset in range(50, max(51, len(full) // HOP - 50), 25):
        w = np.roll(full, -(start_frame + offset) * HOP)[: length * HOP]
        out += [w, w[::-1].copy()]
    return out


def sync(audio: np.ndarray, signal: np.ndarray):
    return sync_of_signals(audio_envelope(audio, SR, FPS, len(signal)), signal, FPS, 15, len(signal))


def calibrate(name: str, full: np.ndarray, rng: np.random.Generator) -> dict:
    _, opening_file, speech = CLIPS[name]
    truth = np.load(REAL / opening_file).astype(np.float64)
    thumbs = thumbnails_of(name)
    n = len(thumbs)
    wav = load_audio(REAL / speech, SR) if speech else full[: n * HOP]
    track = MouthTrack.of(thumbs)
    signal, _ = track.opening(FPS)
    row = {"clip": name, "frames": n, "r_truth": float(np.corrcoef(signal, truth)[0, 1]),
           "keyframes": track.keyframes}
    results = [sync(shift_audio(wav, k, rng), signal) for k in range(-6, 7)]
    right = [abs(r.offset_frames - (k - 2)) <= 1 for k, r in zip(range(-6, 7), results)]
    row["full"] = {"right": int(sum(right)), "reliable": sum(r.reliable for r in results),
                   "right_and_reliable": int(sum(ok and r.reliable for ok, r in zip(right, results))),
                   "offsets": [r.offset_frames for r in results],
                   "confidence": [round(r.confidence, 2) for r in results]}
    reversed_ = [sync(shift_audio(wav[::-1].copy(), k, rng), signal) for k in range(-6, 7)]
    row["reversed"] = {"reliable": sum(r.reliable for r in reversed_),
                       "max_confidence": max(r.confidence for r in reversed_)}
    nulls = {}
    for label, length in [*LENGTHS.items(), ("full", n)]:
        starts = [0] if length >= n else list(range(0, n - length + 1, max(1, (n - length) // 5)))
        true_trials = true_right = 0
        null_conf, alarms = [], 0
        for start in starts:
            part = MouthTrack.of(thumbs[start : start + length]).opening(FPS)[0] if length < n else signal
            if length < n:
                for k in (-4, 0, 4):
                    r = sync(shift_audio(wav, k, rng)[start * HOP : (start + length) * HOP], part)
                    true_trials += 1
                    true_right += r.reliable and abs(r.offset_frames - (k - 2)) <= 1
            for audio in null_audio(full, length, start, n):
                r = sync(audio, part)
                null_conf.append(r.confidence)
                alarms += r.reliable
        nulls[label] = {"null_trials": len(null_conf), "false_alarms": alarms,
                        "null_p95": float(np.percentile(null_conf, 95)), "null_max": float(max(null_conf))}
        if length < n:
            nulls[label].update(true_trials=true_trials, true_right_and_reliable=true_right)
    row["lengths"] = nulls
    lags = {}
    for delay in (0, 2, -3):
        late = (np.concatenate([thumbs[:1].repeat(delay, 0), thumbs[: n - delay]]) if delay >= 0
                else np.concatenate([thumbs[-delay:], thumbs[-1:].repeat(-delay, 0)]))
        r = video_lag(track, MouthTrack.of(late), FPS)
        lags[f"delay {delay:+d}"] = {"offset": r.offset_frames, "confidence": round(r.confidence, 2),
                                     "reliable": r.reliable}
    for label, other in (("reversed", thumbs[::-1].copy()), ("rolled by half", np.roll(thumbs, n // 2, axis=0))):
        r = video_lag(track, MouthTrack.of(other), FPS)
        lags[label] = {"offset": r.offset_frames, "confidence": round(r.confidence, 2), "reliable": r.reliable}
    row["video_lag"] = lags
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"real data not available: {REAL} is absent (set EVALKIT_SHARED)")
        return 1
    rng = np.random.default_rng(0)
    full = load_audio(REAL / "speech_16k.wav", SR)
    rows = []
    for name in CLIPS:
        row = calibrate(name, full, rng)
        rows.append(row)
        print(json.dumps(row))
    print(f"\nthresholds: audio confidence >= {RELIABLE_CONFIDENCE:g}, video lag >= {VIDEO_LAG_RELIABLE_CONFIDENCE:g}\n")
    print("| clip | r with the true opening | shifts -6..6 right within 1 frame | reliable | reversed speech "
          "reliable (max conf.) | unrelated speech: false alarms (5 s / 8 s / full) | true speech right and reliable"
          " (5 s / 8 s) | video lag: delays 0, +2, -3 read | null video lag reliable |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ln = r["lengths"]
        alarms = " / ".join(f"{ln[k]['false_alarms']} of {ln[k]['null_trials']}" for k in ("5 s", "8 s", "full"))
        true = " / ".join(f"{ln[k]['true_right_and_reliable']} of {ln[k]['true_trials']}" for k in LENGTHS)
        lag = r["video_lag"]
        read = ", ".join(f"{lag[k]['offset']:+d}{'' if lag[k]['reliable'] else ' (unreliable)'}"
                         for k in ("delay +0", "delay +2", "delay -3"))
        null_lag = sum(lag[k]["reliable"] for k in ("reversed", "rolled by half"))
        print(f"| {r['clip']} | {r['r_truth']:.2f} | {r['full']['right']} of 13 | {r['full']['reliable']} of 13 | "
              f"{r['reversed']['reliable']} of 13 ({r['reversed']['max_confidence']:.1f}) | {alarms} | {true} | "
              f"{read} | {null_lag} of 2 |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
