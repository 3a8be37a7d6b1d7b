"""ModelRepository: version policies, refusals that keep the serving version, atomic swaps, poll."""

from __future__ import annotations

import logging
import shutil
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from feedrank.model_config import CONFIG_FILE
from feedrank.server.backends.base import ModelLoadError
from feedrank.server.repository import InvalidName, ModelNotFound, ModelRepository

from model_repo_factory import make_repository, rows, trained, write_config, write_version


def loaded_repository(root, models, **config):
    make_repository(root, models, **config)
    repository = ModelRepository(root)
    repository.load_all()
    return repository


@pytest.mark.parametrize(
    ("policy", "serving"),
    [
        ("latest1", [3]),
        ("latest2", [2, 3]),
        ("all", [1, 2, 3]),
        ("specific:1,3", [1, 3]),
        ("specific:2,9", [2]),
    ],
)
def test_version_policy_selects_the_versions(tmp_path, policy, serving):
    repository = loaded_repository(tmp_path, {"m": [1, 2, 3]}, policy=policy)
    assert repository.versions("m") == serving
    assert repository.get("m").version == serving[-1]  # no version: the highest loaded


def test_versions_score_with_their_own_model(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1, 2]})
    x = rows(20)
    for version in (1, 2):
        np.testing.assert_allclose(
            repository.get("m", version).backend.like_probability(x),
            trained(version).predict_proba(x)[:, 1],
            atol=1e-6,
        )


def test_not_loaded_model_or_version_raises_model_not_found(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1, 2]}, policy="latest1")
    with pytest.raises(ModelNotFound, match="version 1 is not loaded"):
        repository.get("m", 1)
    with pytest.raises(ModelNotFound, match="'nope' is not loaded"):
        repository.get("nope")
    with pytest.raises(ModelNotFound):
        repository.load("nope")


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "x" * 200])
def test_names_that_leave_the_repository_are_rejected(tmp_path, name):
    repository = ModelRepository(tmp_path)
    with pytest.raises(InvalidName):
        repository.load(name)
    with pytest.raises(InvalidName):
        repository.unload(name)


def test_corrupt_new_version_is_refused_and_the_previous_keeps_serving(tmp_path, caplog):
    repository = loaded_repository(tmp_path, {"m": [1, 2]})
    before = repository.get("m")
    (tmp_path / "m" / "3").mkdir()
    (tmp_path / "m" / "3" / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
    with caplog.at_level(logging.ERROR, logger="feedrank.server.repository"):
        with pytest.raises(ModelLoadError, match="version 3"):
            repository.load("m")
    assert repository.versions("m") == [1, 2] and repository.get("m") is before
    entry = {e["version"]: e for e in repository.index()}["3"]
    assert entry["state"] == "UNAVAILABLE" and "onnxruntime cannot load" in entry["reason"]
    assert any("m version 3 refused" in r.getMessage() for r in caplog.records)


def test_a_serving_version_whose_files_turn_corrupt_keeps_its_loaded_copy(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1, 2]})
    serving = repository.get("m", 2)
    (tmp_path / "m" / "2" / "model.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelLoadError, match="m version 2"):
        repository.load("m")
    assert repository.get("m", 2) is serving
    entry = {e["version"]: e for e in repository.index()}["2"]
    assert entry["state"] == "READY" and entry["reason"].startswith("reload refused")


def test_inputs_that_do_not_match_metadata_are_refused(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1]})
    write_version(tmp_path, "m", 2)
    meta = tmp_path / "m" / "2" / "metadata.json"
    meta.write_text(
        meta.read_text().replace(
            '{"name": "f5", "source": "user"}',
            '{"name": "f5", "source": "user"}, {"name": "f6", "source": "post"}',
        )
    )
    with pytest.raises(ModelLoadError, match="lists 7 features, the model input takes 6"):
        repository.load("m")
    assert repository.versions("m") == [1]


def test_inputs_that_do_not_match_config_are_refused(tmp_path):
    write_config(tmp_path, "m", n_features=5)  # the model itself takes 6
    write_version(tmp_path, "m", 1)
    repository = ModelRepository(tmp_path)
    with pytest.raises(ModelLoadError, match="config.pbtxt declares"):
        repository.load("m")
    assert repository.versions("m") == [] and not repository.ready()


def test_failed_warm_up_refuses_the_version(tmp_path):
    """A graph that answers log(0) = -inf on the warm-up row never serves."""
    repository = loaded_repository(tmp_path, {"m": [1]})
    folder = write_version(tmp_path, "m", 2)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [6, 2], [0.0] * 12)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["z"]),
            helper.make_node("Log", ["z"], ["probabilities"]),
            helper.make_node("ArgMax", ["z"], ["label"], axis=1, keepdims=0),
        ],
        "nan",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 6])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    with pytest.raises(ModelLoadError, match="warm-up: non-finite"):
        repository.load("m")
    assert repository.versions("m") == [1]


def test_held_version_keeps_working_after_a_swap_and_an_unload(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1]}, policy="latest1")
    held = repository.get("m")
    write_version(tmp_path, "m", 2)
    repository.load("m")
    assert repository.get("m").version == 2
    repository.unload("m")
    with pytest.raises(ModelNotFound):
        repository.get("m")
    x = rows(8)
    np.testing.assert_allclose(
        held.backend.like_probability(x), trained(1).predict_proba(x)[:, 1], atol=1e-6
    )
    assert {e["state"] for e in repository.index()} == {"UNAVAILABLE"}


def test_unchanged_versions_are_not_reloaded(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1, 2]})
    first = repository.get("m", 1)
    write_version(tmp_path, "m", 3)
    repository.load("m")
    assert repository.versions("m") == [2, 3]
    assert repository.get("m", 2).backend is not first.backend
    second = repository.get("m", 2)
    repository.load("m")
    assert repository.get("m", 2) is second


def test_poll_notices_new_changed_and_removed_versions_and_models(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1], "other": [1]})
    x = rows(10)
    write_version(tmp_path, "m", 2)
    repository.poll_once()
    assert repository.versions("m") == [1, 2]
    changed = write_version(tmp_path, "m", 9, seed=5)
    shutil.rmtree(tmp_path / "m" / "2")
    shutil.move(changed, tmp_path / "m" / "2")  # same version, different files
    repository.poll_once()
    np.testing.assert_allclose(
        repository.get("m", 2).backend.like_probability(x),
        trained(5).predict_proba(x)[:, 1],
        atol=1e-6,
    )
    shutil.rmtree(tmp_path / "m" / "2")
    shutil.rmtree(tmp_path / "other")
    repository.poll_once()
    assert repository.versions("m") == [1] and repository.models() == ["m"]


def test_poll_skips_an_unchanged_failure_and_an_explicit_unload(tmp_path, caplog):
    repository = loaded_repository(tmp_path, {"m": [1], "gone": [1]})
    (tmp_path / "m" / CONFIG_FILE).write_text("name: 'm'\nnot_a_field: 1\n")
    repository.unload("gone")
    with caplog.at_level(logging.ERROR, logger="feedrank.server.repository"):
        repository.poll_once()
        repository.poll_once()
    refusals = [r for r in caplog.records if "model m refused" in r.getMessage()]
    assert len(refusals) == 1  # logged once, not once per poll
    assert repository.versions("m") == [1] and repository.versions("gone") == []
    assert any(
        e["name"] == "m" and "not a valid Triton ModelConfig" in e["reason"]
        for e in repository.index()
    )


def test_polling_thread_loads_a_new_version(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1]}, policy="latest1")
    repository.start_polling(0.05)
    try:
        write_version(tmp_path, "m", 2)
        for _ in range(400):
            if repository.versions("m") == [2]:
                break
            time.sleep(0.05)
    finally:
        repository.stop_polling()
    assert repository.versions("m") == [2]


def test_a_version_removed_from_disk_leaves_the_index(tmp_path):
    repository = loaded_repository(tmp_path, {"m": [1, 2]})
    shutil.rmtree(tmp_path / "m" / "1")
    repository.load("m")
    assert repository.versions("m") == [2]
    assert [e["version"] for e in repository.index()] == ["2"]
