"""Time the field's metrics pass (measure.field.measure_field) on a finished run of the demo suite.

Run from the repository root: ``python tests/benchmarks/field_pass.py RUN_DIR`` (a run folder of suites/demo.yaml,
e.g. the newest in reports/demo/). Measures the first run of the record again, without and with the face metrics
(these need evalkit[face]), and prints wall seconds and CPU-seconds of each.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from evalkit.config.contract import Contract
from evalkit.config.suite import MetricsSpec
from evalkit.measure.field import measure_field
from evalkit.pipeline.audio import load_audio
from evalkit.pipeline.crop import load_crop_boxes


def main(run: Path) -> None:
    record = json.loads((run / "run.json").read_text())
    entry = next(e for e in record["runs"] if e["status"] == "ok")
    facts = record["inputs"][entry["input"]]
    contract = Contract(**record["models"][entry["model"]]["contract"])
    boxes = load_crop_boxes(Path(facts["crop_boxes"]["path"]))
    wav = load_audio(Path(facts["audio"]["path"]), contract.sample_rate)
    video, truth = Path(facts["video"]["path"]), Path(facts["ground_truth"]["path"])
    for face in (False, True):
        wall, cpu = time.perf_counter(), time.process_time()
        field = measure_field(run / entry["folder"], entry["frames"], entry["template_indices"], boxes, video, truth,
                              contract, MetricsSpec(face=face), wav, entry["sync"])
        print(f"{entry['model']}, {entry['frames']} frames, face metrics {'on' if face else 'off'}: "
              f"{time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} CPU-s"
              + (f" ({field['face_missing']})" if face and field["face_missing"] else ""))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
