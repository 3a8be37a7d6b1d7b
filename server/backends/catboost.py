"""The CatBoost native backend: `model.cbm` beside `model.onnx`, evaluated by CatBoost itself.

It serves the same tensors as the ONNX export ("label" INT64 [N], "probabilities" FP32 [N, 2]),
so the two backends can be compared on one version; CatBoost's evaluator is much faster than
onnxruntime's tree walk on large batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from catboost import CatBoostClassifier, CatBoostError
from tritonclient.grpc.model_config_pb2 import ModelConfig

from feedrank.server.backends.base import Backend, ModelLoadError, TensorSpec

MODEL_FILE = "model.cbm"


class CatBoostBackend(Backend):
    name: ClassVar[str] = "catboost"
    platform: ClassVar[str] = "catboost"

    def __init__(self, version_dir: Path, config: ModelConfig, *, threads: int = 1) -> None:
        path = version_dir / MODEL_FILE
        self.model = CatBoostClassifier(thread_count=threads)
        try:
            self.model.load_model(str(path))
        except (CatBoostError, OSError) as error:
            raise ModelLoadError(f"{path}: CatBoost cannot load it: {error}") from error
        self.threads = threads
        input_name = config.input[0].name if config.input else "features"
        self.inputs = [TensorSpec(input_name, "FP32", (-1, len(self.model.feature_names_)))]
        self.outputs = [
            TensorSpec("label", "INT64", (-1,)),
            TensorSpec("probabilities", "FP32", (-1, 2)),
        ]

    def _probabilities(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features, thread_count=self.threads)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        probabilities = self._probabilities(inputs[self.inputs[0].name])
        return {
            "label": probabilities.argmax(axis=1).astype(np.int64),
            "probabilities": probabilities.astype(np.float32),
        }

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        return self._probabilities(features)[:, 1].astype(np.float64)
