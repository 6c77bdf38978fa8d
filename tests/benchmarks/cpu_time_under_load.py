"""CPU time per inference against wall time, on a quiet machine and beside busy loops in other processes.

    python tests/benchmarks/cpu_time_under_load.py [MODEL.onnx] [--inferences N]

Times the generator (default: the fixtures' mobile_unet.onnx, a real network's size) as evalkit's latency pass
does (pipeline/latency.py: 10 warm-ups, then N timed calls, wall clock and process CPU time per call), with 0, 1
and 2 other processes each keeping a core busy, and prints per condition: the median wall and CPU milliseconds
per inference, their ratio to the quiet pass, and the share of the machine other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.config.suite import BackendSpec, SessionOptions
from evalkit.pipeline.latency import time_inference
from evalkit.pipeline.runner import OnnxRuntimeRunner

REPO = Path(__file__).resolve().parents[2]


def _busy(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(REPO / "data" / "fixtures" / "models" / "mobile_unet.onnx"))
    parser.add_argument("--inferences", type=int, default=100)
    args = parser.parse_args()
    contract = Contract()
    backend = BackendSpec(name="cpu", session_options=SessionOptions(intra_op_num_threads=2))
    rng = np.random.default_rng(0)
    with OnnxRuntimeRunner(Path(args.model), contract, backend) as runner:
        h = contract.inner_box[3] - contract.inner_box[1]
        w = contract.inner_box[2] - contract.inner_box[0]
        images = rng.random((4, 1, 6, h, w), dtype=np.float32)
        audios = rng.random((4, 1, *contract.audio_input_shape), dtype=np.float32)
        quiet = None
        print(f"{'other busy processes':>21} {'wall ms (median)':>17} {'CPU ms (median)':>16} {'wall x':>7} "
              f"{'CPU x':>6} {'others share':>13}")
        for others in (0, 1, 2):
            ctx = multiprocessing.get_context("spawn")
            loads = [ctx.Process(target=_busy, args=(time.time() + 600,), daemon=True) for _ in range(others)]
            for p in loads:
                p.start()
            time.sleep(0.5 if others else 0)
            try:
                t = time_inference(runner, images, audios, 10, args.inferences, 0.0)
            finally:
                for p in loads:
                    p.terminate()
                    p.join()
            wall, cpu = float(np.median(t.timed_ms)), float(np.median(t.cpu_ms))
            quiet = quiet or (wall, cpu)
            share = t.load["others_share"]
            print(f"{others:>21} {wall:>17.2f} {cpu:>16.2f} {wall / quiet[0]:>7.2f} {cpu / quiet[1]:>6.2f} "
                  f"{'-' if share is None else f'{share:.2f}':>13}")


if __name__ == "__main__":
    main()
