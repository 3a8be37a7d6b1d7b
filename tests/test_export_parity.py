"""ONNX export and the parity gate, on a real CatBoost model and a real onnxruntime session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from catboost import CatBoostClassifier

from feedrank.errors import FeedrankError
from feedrank.export.onnx_export import OnnxScorer, export_onnx
from feedrank.export.parity import check_parity, require_parity


def train(seed: int) -> CatBoostClassifier:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 0.8).astype(int)
    return CatBoostClassifier(
        iterations=40,
        depth=4,
        random_seed=seed,
        verbose=False,
        thread_count=1,
        allow_writing_files=False,
    ).fit(x, y)


@pytest.fixture(scope="module")
def model() -> CatBoostClassifier:
    return train(1)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(2).normal(size=(10_000, 8)).astype(np.float32)


def requests(rows: np.ndarray, n: int = 5):
    post_ids = np.arange(400, dtype=np.int64) + 1000
    for i in range(n):
        yield rows[i * 400 : (i + 1) * 400], post_ids


def perturb_leaves(path: Path, scale: float) -> None:
    graph = onnx.load(str(path))
    (trees,) = [n for n in graph.graph.node if n.op_type == "TreeEnsembleClassifier"]
    weights = next(a for a in trees.attribute if a.name == "class_weights")
    weights.floats[:] = [w * scale for w in weights.floats]
    onnx.save(graph, str(path))


def test_export_has_tensor_probabilities(model, rows, tmp_path):
    export_onnx(model, tmp_path / "model.onnx", name="m")
    outputs = {o.name: o for o in onnx.load(str(tmp_path / "model.onnx")).graph.output}
    assert set(outputs) == {"label", "probabilities"}
    assert outputs["probabilities"].type.HasField("tensor_type")
    p = OnnxScorer(tmp_path / "model.onnx", threads=1).like_probability(rows[:100])
    assert p.shape == (100,) and np.all((p > 0) & (p < 1))


def test_faithful_export_passes(model, rows, tmp_path):
    export_onnx(model, tmp_path / "model.onnx", name="m")
    report = check_parity(model, tmp_path / "model.onnx", rows, requests(rows), threads=1)
    require_parity("m", report)
    assert report.passed and report.max_abs_diff <= 1e-5 and report.requests == 5


def test_perturbed_leaves_are_refused(model, rows, tmp_path):
    export_onnx(model, tmp_path / "model.onnx", name="m")
    perturb_leaves(tmp_path / "model.onnx", 1.01)
    report = check_parity(model, tmp_path / "model.onnx", rows, requests(rows), threads=1)
    assert not report.passed and report.max_abs_diff > 1e-5
    with pytest.raises(FeedrankError, match="differs from CatBoost, not published"):
        require_parity("m", report)


def test_onnx_of_another_model_is_refused(model, rows, tmp_path):
    export_onnx(train(3), tmp_path / "model.onnx", name="other")
    report = check_parity(model, tmp_path / "model.onnx", rows, requests(rows), threads=1)
    assert report.top5_mismatches > 0
    with pytest.raises(FeedrankError, match="top-5 differs"):
        require_parity("m", report)


def test_too_few_rows_are_refused(model, rows, tmp_path):
    export_onnx(model, tmp_path / "model.onnx", name="m")
    report = check_parity(model, tmp_path / "model.onnx", rows[:500], [], threads=1)
    with pytest.raises(FeedrankError, match="at least 10000 rows"):
        require_parity("m", report)
