"""feedrank: feed recommendations served from ONNX models, ready for A/B experiments."""

__version__ = "0.1.0"
