"""What a local worker process needs before its first combination, loaded once in the fork server.

``--workers N`` starts its workers from a multiprocessing fork server (executors.py) that imports this module
once, while the driver is still checking the suite (preflight): each worker is then a fork of a process that
already holds the pipeline's modules (ONNX Runtime, OpenCV, numba, scipy, soundfile and soxr for the audio) and, when
the suite measures faces, dlib's models, instead of a fresh interpreter importing them all again (about 3 CPU-s
a worker here). Nothing here starts a thread or an ONNX Runtime session: a fork of this process is safe.

Where the fork server is a fork of the driver (executors._fork_server_from_here: Linux, the driver still one
thread), the modules are the driver's already and ``preload`` is called in the fork, for what the driver has not
loaded (dlib's models); elsewhere the fork server imports this module, which calls it.

``EVALKIT_PRELOAD_FACE=1`` in the fork server's environment (set by the driver when its suite measures faces
and the face extra is installed) loads dlib's models too (about 1 CPU-s, shared by every worker).
"""

from __future__ import annotations

import os

FACE_ENV = "EVALKIT_PRELOAD_FACE"


def preload() -> None:
    import soundfile  # noqa: F401 (load_audio's reader and resampler: imported when a job reads its speech)
    import soxr  # noqa: F401

    import evalkit.matrix.jobs  # noqa: F401 (the pipeline: generate, runner, measures, record)
    import evalkit.measure.field  # noqa: F401 (CPBD, face metrics, perceptual networks)
    import evalkit.measure.outputs  # noqa: F401
    import evalkit.metrics.sync  # noqa: F401

    if os.environ.get(FACE_ENV) == "1":
        from evalkit.metrics.face import FaceModels

        FaceModels.load()


try:
    preload()
except Exception:  # a preload that fails costs time, never the run: the worker imports what it needs itself
    pass
