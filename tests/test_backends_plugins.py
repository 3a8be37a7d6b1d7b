"""Backends: found by name through entry points, equal to CatBoost on the same rows."""

from __future__ import annotations

import importlib
import sys
import threading

import numpy as np
import onnxruntime as ort
import pytest

from feedrank.model_config import read_config
from feedrank.server.backends import base
from feedrank.server.backends.base import ModelLoadError, UnknownBackend, backend_class
from feedrank.server.backends.catboost import CatBoostBackend
from feedrank.server.backends.onnxruntime import OnnxRuntimeBackend
from feedrank.server.repository import ModelRepository

from model_repo_factory import install_backend_plugin, rows, trained, write_config, write_version


def test_shipped_backends_are_found_by_entry_point_name():
    assert backend_class("onnxruntime") is OnnxRuntimeBackend
    assert backend_class("catboost") is CatBoostBackend
    with pytest.raises(UnknownBackend, match="'tensorrt' is not installed"):
        backend_class("tensorrt")


@pytest.mark.parametrize("zipmap", [False, True], ids=["tensor", "zipmap"])
@pytest.mark.parametrize("backend", ["onnxruntime", "catboost"])
def test_backends_equal_catboost_predict_proba(tmp_path, backend, zipmap):
    write_config(tmp_path, "m", backend=backend)
    write_version(tmp_path, "m", 1, zipmap=zipmap)
    x = rows(300)
    expected = trained(1).predict_proba(x)
    loaded = base.load_backend(tmp_path / "m" / "1", read_config(tmp_path / "m"))
    np.testing.assert_allclose(loaded.like_probability(x), expected[:, 1], atol=1e-6)
    out = loaded.infer({"features": x})
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-6)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (300, 2)


def test_platform_onnxruntime_onnx_selects_the_onnxruntime_backend(tmp_path):
    folder = write_config(tmp_path, "m")
    text = (
        (folder / "config.pbtxt")
        .read_text()
        .replace('backend: "onnxruntime"', 'platform: "onnxruntime_onnx"')
    )
    (folder / "config.pbtxt").write_text(text)
    write_version(tmp_path, "m", 1)
    repository = ModelRepository(tmp_path, threads=2)
    repository.load("m")
    backend = repository.get("m").backend
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.session.get_session_options().intra_op_num_threads == 2


def test_unknown_backend_is_refused_with_its_name(tmp_path):
    write_config(tmp_path, "m", backend="nosuch")
    write_version(tmp_path, "m", 1)
    repository = ModelRepository(tmp_path)
    with pytest.raises(ModelLoadError, match="backend 'nosuch' is not installed"):
        repository.load("m")
    assert repository.index()[0]["state"] == "UNAVAILABLE"


PLUGIN = '''
import numpy as np
from feedrank.server.backends.base import Backend, TensorSpec

class HalfBackend(Backend):
    """Answers 0.5 for every row: a backend that lives outside feedrank."""
    name = "half"
    platform = "half"

    def __init__(self, version_dir, config, *, threads=1):
        self.inputs = [TensorSpec("features", "FP32", (-1, 6))]
        self.outputs = [TensorSpec("label", "INT64", (-1,)),
                        TensorSpec("probabilities", "FP32", (-1, 2))]

    def infer(self, inputs):
        n = len(inputs["features"])
        return {"label": np.zeros(n, np.int64), "probabilities": np.full((n, 2), 0.5, np.float32)}

    def like_probability(self, features):
        return np.full(len(features), 0.5)
'''


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    base.available_backends.cache_clear()
    yield site
    base.available_backends.cache_clear()
    for module in [m for m in sys.modules if m.endswith("_backend_plugin")]:
        del sys.modules[module]


def test_a_new_backend_is_a_new_module_and_an_entry_point(tmp_path, plugin_site):
    """An installed distribution (a real dist-info on sys.path) adds a backend; no server edit."""
    install_backend_plugin(plugin_site, "half_backend_plugin", PLUGIN, "half", "HalfBackend")
    repo = tmp_path / "repo"
    write_config(repo, "m", backend="half")
    write_version(repo, "m", 1)
    repository = ModelRepository(repo)
    repository.load("m")
    assert repository.get("m").backend.like_probability(rows(4)).tolist() == [0.5] * 4


SLOW = PLUGIN.replace(
    "class HalfBackend",
    """import threading

RELEASE = threading.Event()
STARTED = threading.Event()


class HalfBackend""",
).replace(
    "        self.inputs = [",
    """        STARTED.set()
        RELEASE.wait(30)
        self.inputs = [""",
)


def test_status_answers_during_a_slow_load_and_shows_loading(tmp_path, plugin_site):
    install_backend_plugin(plugin_site, "slow_backend_plugin", SLOW, "slow", "HalfBackend")
    repo = tmp_path / "repo"
    write_config(repo, "m", backend="slow")
    write_version(repo, "m", 1)
    repository = ModelRepository(repo)
    loading = threading.Thread(target=repository.load, args=("m",))
    loading.start()
    plugin = importlib.import_module("slow_backend_plugin")
    try:
        assert plugin.STARTED.wait(30)
        assert repository.index() == [
            {"name": "m", "version": "1", "state": "LOADING", "reason": ""}
        ]
        assert not repository.ready()
    finally:
        plugin.RELEASE.set()
        loading.join()
    assert repository.index()[0]["state"] == "READY" and repository.ready()


def test_onnxruntime_backend_reads_the_probabilities_output_not_label(tmp_path):
    write_config(tmp_path, "m")
    write_version(tmp_path, "m", 1)
    session = ort.InferenceSession(str(tmp_path / "m" / "1" / "model.onnx"))
    x = rows(50)
    (probabilities,) = session.run(["probabilities"], {"features": x})
    backend = base.load_backend(tmp_path / "m" / "1", read_config(tmp_path / "m"))
    assert np.array_equal(backend.like_probability(x), probabilities[:, 1].astype(np.float64))
