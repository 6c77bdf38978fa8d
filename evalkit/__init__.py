"""evalkit: evaluate audio-driven lip-sync generators exported to ONNX.

The package is laid out by concern (config, record, pipeline, media, metrics, measure, matrix, ci,
report; see README.md, "Where things are"), one module per pipeline stage.
"""

__version__ = "0.1.0"
