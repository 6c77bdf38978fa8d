"""The suite's path through ``run_suite``, traced call by call (issue 26): which of evalkit's modules it passes
through, how often it enters each from another module, and how often a call climbs back up the import layers
(a module calling into a module of a higher floor: a callback, or a consumer handed down).

Run from the checkout, with the fixtures built::

    python -m tests.call_path            # the fixture suite below, one combination, in this process

"Entries" of a module: the distinct (calling module, function entered) pairs with which the path steps into
it from another module, so a function called for every frame counts once. A "climb": such an entry where the
called module's floor (``tests.import_graph.LAYERS``) is above the caller's. Nothing here passes or fails.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "evalkit"


def module_of_file(filename: str) -> str | None:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(PACKAGE)
    except ValueError:
        return None
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["evalkit", *parts])


def trace(suite_yaml: Path, out: Path) -> set[tuple[str | None, str, str]]:
    """The (calling module, called module, function) entries of one in-process ``run_suite`` of the suite."""
    from evalkit.config.suite import load_suite
    from evalkit.run import run_suite

    entries: set[tuple[str | None, str, str]] = set()
    cache: dict[str, str | None] = {}

    def module(code) -> str | None:
        name = code.co_filename
        if name not in cache:
            cache[name] = module_of_file(name)
        return cache[name]

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = module(frame.f_code)
        if callee is None:
            return
        back = frame.f_back
        while back is not None and module(back.f_code) is None:  # through the standard library and packages
            back = back.f_back
        caller = module(back.f_code) if back is not None else None
        if caller != callee:
            entries.add((caller, callee, frame.f_code.co_name))

    loaded = load_suite(suite_yaml)
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run_suite(loaded, out=out, log=lambda *_: None, workers=1)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return entries


def figures(entries) -> dict:
    from tests.import_graph import layer_of

    into = Counter(callee for _, callee, _ in entries)
    climbs = [(a, b, f) for a, b, f in entries if a is not None and layer_of(b) > layer_of(a)]
    return {"files": len(into), "entries": into, "climbs": climbs}


def fixture_suite(folder: Path) -> Path:
    import yaml

    fixtures = REPO / "data" / "fixtures"
    clip, models = fixtures / "clip", fixtures / "models"
    data = {"name": "call_path", "models": [{"name": "reference", "generator": str(models / "reference.onnx"),
                                              "audio_encoder": str(models / "audio_encoder.onnx")}],
            "inputs": [{"name": "clip", "video": str(clip / "talking_head.mkv"), "audio": str(clip / "speech.wav"),
                        "crop_boxes": str(clip / "crop_boxes.txt"), "ground_truth": str(clip / "talking_head.mkv")}],
            "backends": [{"name": "cpu", "session_options": {"intra_op_num_threads": 1}}],
            "timing": {"warmup": 1, "min_timed_frames": 5, "min_seconds": 0},
            "metrics": {"trim_to_shortest": True, "face": False}}
    path = folder / "call_path.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="evalkit-call-path-") as tmp:
        result = figures(trace(fixture_suite(Path(tmp)), Path(tmp) / "reports"))
    print(f"modules passed through: {result['files']}; entries from another module: "
          f"{sum(result['entries'].values())}; climbs up a layer: {len(result['climbs'])}")
    print("most entered:")
    for name, count in result["entries"].most_common(10):
        print(f"  {count:3d}  {name}")
    print("climbs (caller -> called function):")
    for a, b, f in sorted(result["climbs"]):
        print(f"  {a} -> {b}.{f}")


if __name__ == "__main__":
    main()
