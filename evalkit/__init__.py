"""evalkit: evaluate audio-driven lip-sync generators exported to ONNX.

The package is laid out by pipeline stage (see README.md, "Where things are").
"""

__version__ = "0.1.0"
