"""A one-input suite described by command-line flags (``evalkit run --generator ...``, ``evalkit init``).

The flags become a suite mapping, written as a commented YAML file and then read back by
``suite.load_suite`` like any other suite: there is one way a suite is validated and run. The same text is
what ``evalkit init`` writes and what a flag run keeps as ``suite.yaml`` in its run folder.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from pathlib import Path

import yaml

from evalkit.errors import UserError

# Flags that describe the suite (dest names); any of them without --generator is a usage error.
SUITE_FLAGS = ("generator", "audio_encoder", "video", "audio", "crop_boxes", "landmarks", "dataset", "ground_truth",
               "provider", "protocol", "name", "trim_to_shortest")
INPUT_FILE_FLAGS = {"dataset": True, "video": False, "audio": False, "crop_boxes": False, "landmarks": True,
                    "ground_truth": False}
"""The flags that name the input's files (dest -> names a folder), in the order the suite lists them."""
PROTOCOL_CHOICES = "reconstruction, distant, dubbed:SPEECH.wav"
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def add_suite_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a one-input suite, as an option group of ``parser``."""
    g = parser.add_argument_group(
        "a suite described by flags (instead of SUITE.yaml): one model x one input",
        "Give --generator, --audio-encoder, and --video, --audio with one of --crop-boxes / --landmarks, or a "
        "--dataset folder.")
    g.add_argument("--generator", metavar="G.onnx", help="the generator ONNX file")
    g.add_argument("--audio-encoder", metavar="E.onnx", help="its audio encoder (mel window -> feature row)")
    g.add_argument("--video", metavar="V", help="the template video (its frames get the re-drawn mouth)")
    g.add_argument("--audio", metavar="A", help="the driving speech (any rate); with --dataset: default its aud.wav")
    g.add_argument("--crop-boxes", metavar="F", help="box file: one 'x1 y1 x2 y2' line per template frame")
    g.add_argument("--landmarks", metavar="DIR", help="folder of per-frame N.lms landmark files")
    g.add_argument("--dataset", metavar="DIR", help="a SyncTalk_2D dataset folder (full_body_img/, landmarks/, "
                   "aud.wav) instead of --video, --audio and --landmarks")
    g.add_argument("--ground-truth", metavar="V", help="what the output should match (reconstruction); usually "
                   "the template video itself (with --dataset: default its frames)")
    g.add_argument("--provider", action="append", metavar="P", help="an ONNX Runtime execution provider, short "
                   "(cpu, cuda, tensorrt, ...) or full (CUDAExecutionProvider); repeatable; one backend each, named "
                   "after it (default: cpu)")
    g.add_argument("--protocol", action="append", metavar="NAME", help=f"one of {PROTOCOL_CHOICES} (dubbing: "
                   "drive the template with other speech, judged without ground truth); repeatable (default: "
                   "reconstruction)")
    g.add_argument("--name", metavar="NAME", help="the suite's name, the folder its runs go to (default: the "
                   "generator file's name)")
    g.add_argument("--trim-to-shortest", action="store_true", help="compare the first min(N) frames when the "
                   "output and the ground truth differ in length (audio shorter than the video)")


def option(dest: str) -> str:
    """A flag's name on the command line: ``audio_encoder`` -> ``--audio-encoder``."""
    return "--" + dest.replace("_", "-")


def flags_given(args: argparse.Namespace) -> list[str]:
    """The suite flags set on the command line, as ``--flag`` names."""
    return [option(f) for f in SUITE_FLAGS if getattr(args, f, None)]


def flag_words(args: argparse.Namespace) -> list[str]:
    """The suite flags set on the command line with their values, as words (``--video v.mp4 --trim-to-shortest``):
    what a suite file written from flags says it was written from."""
    words = []
    for dest in SUITE_FLAGS:
        value = getattr(args, dest, None)
        for v in (value if isinstance(value, list) else [value]):
            if v is True:
                words.append(option(dest))
            elif v:
                words += [option(dest), str(v)]
    return words


def plain_name(text: str, fallback: str) -> str:
    """``text`` as a suite name (letters, digits, '_', '.', '-'; at most 64), e.g. a file's stem."""
    name = _NAME_BAD.sub("_", text).lstrip("_.-")[:64]
    return name or fallback


def _path(flag: str, value: str | None, folder: bool, relative_to: Path | None) -> str | None:
    """A flag's path, checked to exist: relative to ``relative_to`` (the suite file's folder) when it lies
    inside it, else absolute."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if not (path.is_dir() if folder else path.exists()):
        what = "folder" if folder else "file"
        raise UserError(f"--{flag} {value}: no such {what}; give the path of an existing {what}")
    path = path.resolve()
    if relative_to is None or not path.is_relative_to(Path(relative_to).resolve()):
        return str(path)
    return os.path.relpath(path, Path(relative_to).resolve())


def _backend(provider: str) -> dict:
    """``--provider cuda`` or ``--provider CUDAExecutionProvider`` -> {name: cuda, provider: CUDAExecutionProvider}."""
    import onnxruntime as ort

    known = ort.get_all_providers()
    by_short = {p.removesuffix("ExecutionProvider").lower(): p for p in known}
    full = provider if provider in known else by_short.get(provider.lower())
    if full is None:
        raise UserError(f"--provider {provider}: not an ONNX Runtime execution provider; give a short name "
                        f"({', '.join(sorted(by_short))}) or a full one ({', '.join(known[:3])}, ...)")
    return {"name": full.removesuffix("ExecutionProvider").lower(), "provider": full}


def _protocol(text: str, relative_to: Path | None) -> dict:
    """``reconstruction`` | ``distant`` | ``dubbed:SPEECH.wav`` -> a ProtocolSpec mapping."""
    if text == "reconstruction":
        return {"name": "reconstruction"}
    if text == "distant":
        return {"name": "distant", "kind": "reconstruction", "reference": "distant"}
    if text.partition(":")[0] in ("dubbed", "cross_driven"):
        speech = text.partition(":")[2]
        if not speech:
            raise UserError(f"--protocol {text}: dubbing needs the speech that drives the template, after a colon "
                            "(e.g. --protocol dubbed:other_speech.wav)")
        return {"name": "dubbed", "kind": "cross_driven", "audio": _path("protocol dubbed:", speech, False,
                                                                         relative_to)}
    raise UserError(f"--protocol {text}: unknown protocol; give one of {PROTOCOL_CHOICES} (e.g. --protocol "
                    "dubbed:other_speech.wav)")


def suite_data(args: argparse.Namespace, relative_to: Path | None = None) -> dict:
    """The suite the flags describe; paths absolute, or relative to ``relative_to`` (where the file will be)."""
    if not args.generator:
        raise UserError("--generator G.onnx is missing: a suite described by flags needs the generator, its "
                        "--audio-encoder and an input (--video and --audio, or --dataset)")
    if not args.audio_encoder:
        raise UserError("--audio-encoder E.onnx is missing: give the generator's audio encoder (mel window -> "
                        "feature row)")
    if not args.video and not args.dataset:
        raise UserError("no input: give --video V --audio A with --crop-boxes F or --landmarks DIR, or --dataset DIR")
    model_name = plain_name(Path(args.generator).stem, "model")
    model = {"name": model_name,
             "generator": _path("generator", args.generator, False, relative_to),
             "audio_encoder": _path("audio-encoder", args.audio_encoder, False, relative_to)}
    source = args.dataset or args.video
    item = {"name": plain_name(Path(source).stem if not args.dataset else Path(source).resolve().name, "input")}
    for flag, folder in INPUT_FILE_FLAGS.items():
        value = _path(flag.replace("_", "-"), getattr(args, flag), folder, relative_to)
        if value is not None:
            item[flag] = value
    data = {"name": args.name or model_name, "models": [model], "inputs": [item]}
    if args.provider:
        backends = [_backend(p) for p in args.provider]
        data["backends"] = list({b["name"]: b for b in backends}.values())  # cuda given twice: one backend
    if args.protocol:
        protocols = [_protocol(p, relative_to) for p in args.protocol]
        data["protocols"] = list({p["name"]: p for p in protocols}.values())
    if args.trim_to_shortest:
        data["metrics"] = {"trim_to_shortest": True}
    return data


# Each top-level key in the order written, with the comment above it; keys the flags did not set are written
# as a commented-out example.
_SECTIONS = (
    ("name", "The suite's name: each run goes to <output folder>/<name>/<run-id>/.", None),
    ("output_dir", "Where runs go (relative to this file); default: reports/ of the working directory.",
     "output_dir: reports"),
    ("contract", "Contract overrides for every model (input names, crop size, mel settings, ...); `evalkit model "
     "check G.onnx E.onnx` says what to set. Every field: `evalkit suite schema`.",
     "contract:\n  image_input: face"),
    ("models", "The generators under test, each with its audio encoder. Add models to compare them on the same "
     "inputs; a model may also take contract: overrides of its own.", None),
    ("inputs", "Talking-head inputs: template video, driving audio, crop boxes (or landmarks: a folder of .lms "
     "files, or dataset: a SyncTalk_2D folder), and the ground truth the output should match.", None),
    ("backends", "Where the generator runs: one ONNX Runtime execution provider per backend (a provider this "
     "machine lacks is skipped, unless required: true).",
     "backends:\n  - name: cpu\n    provider: CPUExecutionProvider\n  - name: cuda\n"
     "    provider: CUDAExecutionProvider"),
    ("protocols", "What each input is turned into: reconstruction (re-draw the video from its own audio; "
     "reference: distant takes the unmasked reference from a frame far away, so a model that copies is caught) "
     "or cross_driven (dubbing: other speech, judged by sync).",
     "protocols:\n  - name: reconstruction\n  - name: distant\n    reference: distant\n"
     "  - name: dubbed\n    kind: cross_driven\n    audio: other_speech.wav"),
    ("metrics", "How outputs are compared: trim_to_shortest compares the first min(N) frames when the audio "
     "drives fewer frames than the ground truth has.", "metrics:\n  trim_to_shortest: true"),
    ("gates", "Pass/fail criteria on summary.csv fields; any failure makes `evalkit run` exit 1.",
     "gates:\n  - {field: psnr_mean, op: \">=\", value: 30}\n"
     "  - {field: sync_offset_frames, abs: true, op: \"<=\", value: 1}"),
)


def suite_text(data: dict, origin: str) -> str:
    """``data`` as a commented suite file; ``origin`` is the first comment line (what wrote it)."""
    unknown = set(data) - {key for key, _, _ in _SECTIONS}
    if unknown:
        raise AssertionError(f"suite_text: no section for {sorted(unknown)}")
    def comment(text: str) -> list[str]:
        return [f"# {line}" for line in textwrap.wrap(text, 108, break_long_words=False, break_on_hyphens=False)]

    lines = comment(f"{origin} Check it with `evalkit suite check FILE`, run it with `evalkit run FILE`. Paths "
                    "are relative to this file (or absolute).") + [""]
    for key, text, example in _SECTIONS:
        lines += comment(text)
        if key in data:
            lines.append(yaml.safe_dump({key: data[key]}, sort_keys=False, allow_unicode=True).rstrip("\n"))
        else:
            lines.extend(f"# {line}" for line in example.splitlines())
        lines.append("")
    return "\n".join(lines)


def check_files(data: dict, base: Path, log) -> None:
    """What ``evalkit init`` checks as it goes: the files exist (done by ``suite_data``), each ONNX file loads
    in ONNX Runtime, each video decodes. ``base``: the folder the suite's paths are relative to."""
    import onnxruntime as ort

    from evalkit.media.ffmpeg import probe_video
    from evalkit.media.decode import check_decodes

    model = data["models"][0]
    for key in ("generator", "audio_encoder"):
        path = base / model[key]
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for a file that is not a model
            why = " ".join(str(exc).split())[:200]
            raise UserError(f"{option(key)} {path}: ONNX Runtime cannot load it ({why}); give an "
                            "ONNX model file") from None
        shapes = ", ".join(f"{i.name} {i.shape}" for i in session.get_inputs())
        log(f"checked {path}: loads in ONNX Runtime (inputs: {shapes})")
    item = data["inputs"][0]
    for key in ("video", "ground_truth"):
        if key in item and not (key == "ground_truth" and item[key] == item.get("video")):
            path = base / item[key]
            info = probe_video(path)
            check_decodes(info, f"{option(key)} {path}")
            log(f"checked {path}: decodes ({info.frames} frames, {info.width}x{info.height} at {info.fps:g} fps)")
