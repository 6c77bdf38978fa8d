"""evalkit: evaluate audio-driven lip-sync generators exported to ONNX.

The package is laid out by concern (config, record, pipeline, media, metrics, measure, matrix, ci,
report; see docs/where-things-are.md and docs/architecture.md), one module per pipeline stage and one per command (commands/).
Each folder is a floor that imports only the floors below it (docs/architecture.md; tests/test_layers.py).
"""

__version__ = "0.1.0"
