"""The onnxruntime backend: `model.onnx` in one InferenceSession per version.

Sessions use an explicit number of intra-op threads (onnxruntime's default takes every core, and
several loaded versions would then oversubscribe the machine). CatBoost's exporter may end the
graph with a ZipMap (`probabilities` as a sequence of {class: p} maps); this backend turns such an
output into the FP32 [N, classes] tensor the KServe protocol can carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort
from tritonclient.grpc.model_config_pb2 import ModelConfig

from feedrank.server.backends.base import Backend, ModelLoadError, TensorSpec

MODEL_FILE = "model.onnx"
PROBABILITIES = "probabilities"

_ORT_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int16)": "INT16",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _is_zipmap(node: ort.NodeArg) -> bool:
    return node.type.startswith("seq(map(")


def _spec(node: ort.NodeArg) -> TensorSpec:
    if _is_zipmap(node):
        return TensorSpec(node.name, "FP32", (-1, -1))
    datatype = _ORT_TYPES.get(node.type)
    if datatype is None:
        raise ModelLoadError(f"{node.name}: unsupported ONNX type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or ()))
    return TensorSpec(node.name, datatype, shape)


def _tensor(value: object, zipmap: bool) -> np.ndarray:
    if not zipmap:
        return np.asarray(value)
    rows: list[dict] = value  # type: ignore[assignment]
    classes = sorted(rows[0]) if rows else []
    return np.array([[row[c] for c in classes] for row in rows], dtype=np.float32)


class OnnxRuntimeBackend(Backend):
    name: ClassVar[str] = "onnxruntime"
    platform: ClassVar[str] = "onnxruntime_onnx"

    def __init__(self, version_dir: Path, config: ModelConfig, *, threads: int = 1) -> None:
        path = version_dir / MODEL_FILE
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped Fail/InvalidGraph/...
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {error}") from error
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node) for node in self.session.get_outputs()]
        self._zipmap = {node.name for node in self.session.get_outputs() if _is_zipmap(node)}
        self._names = [spec.name for spec in self.outputs]
        if PROBABILITIES not in self._names:
            raise ModelLoadError(f"{path}: no '{PROBABILITIES}' output (outputs: {self._names})")

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self._names, inputs)
        return {
            name: _tensor(value, name in self._zipmap)
            for name, value in zip(self._names, values, strict=True)
        }

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        # `label` is CatBoost's argmax and unreliable in onnxruntime: read the probabilities
        (value,) = self.session.run(
            [PROBABILITIES], {self.inputs[0].name: np.ascontiguousarray(features, np.float32)}
        )
        return _tensor(value, PROBABILITIES in self._zipmap)[:, 1].astype(np.float64)
