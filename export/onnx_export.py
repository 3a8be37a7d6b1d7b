"""CatBoost → ONNX, and an onnxruntime scorer that reads the exported probabilities.

CatBoost's exporter ends the graph with a ZipMap node, so `probabilities` comes out as a sequence
of {class: probability} maps. Triton's onnxruntime backend (and our KServe v2 surface) only carry
tensors, so the ZipMap is dropped: `probabilities` becomes the FP32 tensor [N, 2] it wraps. The
output names stay CatBoost's ("label", "probabilities").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from catboost import CatBoostClassifier
from onnx import TensorProto, helper

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"


def export_onnx(model: CatBoostClassifier, path: Path, *, name: str) -> None:
    raw = path.with_suffix(".raw.onnx")
    model.save_model(
        str(raw),
        format="onnx",
        export_parameters={
            "onnx_domain": "ai.catboost",
            "onnx_model_version": 1,
            "onnx_graph_name": name,
            "onnx_doc_string": f"feedrank {name} model (CatBoost export, ZipMap removed)",
        },
    )
    graph = onnx.load(str(raw))
    raw.unlink()
    onnx.save(without_zipmap(graph), str(path))


def without_zipmap(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap"]
    if len(zipmaps) != 1 or list(zipmaps[0].output) != [PROBABILITY_OUTPUT]:
        raise ValueError("unexpected CatBoost ONNX graph: expected one ZipMap → probabilities")
    tensor_name = zipmaps[0].input[0]
    graph.node.remove(zipmaps[0])
    for node in graph.node:
        node.output[:] = [PROBABILITY_OUTPUT if o == tensor_name else o for o in node.output]
    for i, output in enumerate(graph.output):
        if output.name == PROBABILITY_OUTPUT:
            graph.output.remove(output)
            graph.output.insert(
                i, helper.make_tensor_value_info(PROBABILITY_OUTPUT, TensorProto.FLOAT, ["N", 2])
            )
            break
    onnx.checker.check_model(model)
    return model


class OnnxScorer:
    """P(like) from an exported model, on an explicit number of intra-op threads."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        # `label` is CatBoost's argmax at 0.5 and says nothing about rank: read probabilities
        matrix = np.ascontiguousarray(features, np.float32)
        (probabilities,) = self.session.run([PROBABILITY_OUTPUT], {INPUT_NAME: matrix})
        return probabilities[:, 1].astype(np.float64)
