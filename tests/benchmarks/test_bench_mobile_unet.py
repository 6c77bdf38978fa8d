"""Inference speed of the mobile-unet fixture (a real model's size class) on the CPU provider.

Run with ``python -m pytest tests/benchmarks --benchmark-enable``. Inputs are
the real face crop (inner region, masked copy) and a real-speech-sized audio
window; the model's batch axis is dynamic, so batch 4 is measured too.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from evalkit.config.contract import Contract
from evalkit.pipeline.crop import CropPreparer
from tests.conftest import REAL


@pytest.fixture(scope="module")
def session(fixtures_dir):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(fixtures_dir / "models" / "mobile_unet.onnx"), options,
                                providers=["CPUExecutionProvider"])


def inputs(batch: int):
    path = REAL / "face_crop328_0.png"
    frame = cv2.imread(str(path))[:, :, ::-1] if path.is_file() else np.full((328, 328, 3), 128, np.uint8)
    image = CropPreparer(Contract()).prepare(np.ascontiguousarray(frame), (0, 0, 328, 328))
    audio = np.random.default_rng(0).uniform(-1, 1, (batch, 32, 16, 16)).astype(np.float32)
    return {"image": np.repeat(image, batch, axis=0), "audio": audio}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.benchmark(group="mobile-unet inference, CPU provider, 2 threads")
def test_mobile_unet_cpu(benchmark, session, batch):
    feed = inputs(batch)
    for _ in range(3):  # warm-up, outside the measurement
        session.run(None, feed)
    out = benchmark(session.run, None, feed)[0]
    assert out.shape == (batch, 3, 320, 320)
