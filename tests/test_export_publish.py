"""Publishing into the Triton-layout repository: atomic, never overwriting, valid configs."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from feedrank.errors import FeedrankError
from feedrank.export.publish import ensure_router, latest_metadata, publish_version, write_json


def writer(marker: str):
    def write(folder: Path, version: int) -> None:
        (folder / "model.onnx").write_text(marker)
        write_json(folder / "metadata.json", {"version": version, "marker": marker})

    return write


def test_versions_count_up_and_config_is_a_triton_model_config(tmp_path):
    assert publish_version(tmp_path, "control", 7, writer("a")) == 1
    assert publish_version(tmp_path, "control", 7, writer("b")) == 2
    assert (tmp_path / "control/1/model.onnx").read_text() == "a"
    assert latest_metadata(tmp_path / "control") == (2, {"version": 2, "marker": "b"})
    config = text_format.Parse(
        (tmp_path / "control/config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert (config.name, config.backend, config.max_batch_size) == ("control", "onnxruntime", 0)
    assert list(config.input[0].dims) == [-1, 7]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert [o.name for o in config.output] == ["label", "probabilities"]
    assert config.version_policy.latest.num_versions == 2


def test_a_new_version_keeps_the_parameters_an_operator_added_to_the_config(tmp_path):
    publish_version(tmp_path, "test", 7, writer("a"))
    path = tmp_path / "test/config.pbtxt"
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    config.parameters["fast_path_merge_cost"].string_value = "64"
    config.parameters["ranker"].string_value = "onnxruntime"
    path.write_text(text_format.MessageToString(config))
    publish_version(tmp_path, "test", 8, writer("b"))
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    assert config.parameters["fast_path_merge_cost"].string_value == "64"
    # what the build writes is the build's: the declared ranker and the inputs are current
    assert config.parameters["ranker"].string_value == "fastpath"
    assert list(config.input[0].dims) == [-1, 8]


def test_published_files_are_readable_by_a_server_running_as_another_user(tmp_path):
    publish_version(tmp_path, "control", 7, writer("a"))
    ensure_router(tmp_path, {"control": 1, "test": 1})
    for path in [tmp_path / "control/1", *tmp_path.rglob("*")]:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, path
        assert not path.is_dir() or mode & stat.S_IXOTH, path


def test_failed_write_leaves_nothing_visible(tmp_path):
    publish_version(tmp_path, "test", 3, writer("a"))

    def broken(folder: Path, version: int) -> None:
        (folder / "model.onnx").write_text("half")
        raise FeedrankError("parity failed")

    with pytest.raises(FeedrankError):
        publish_version(tmp_path, "test", 3, broken)
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == ["1", "config.pbtxt"]


def test_router_is_written_only_when_absent(tmp_path):
    assert ensure_router(tmp_path, {"control": 1, "test": 1})
    text = (tmp_path / "router.toml").read_text()
    groups = tomllib.loads(text)["groups"]
    assert [(g["name"], g["buckets"], g["version"]) for g in groups] == [
        ("control", [0, 49], 1),
        ("test", [50, 99], 1),
    ]
    (tmp_path / "router.toml").write_text(text.replace("49", "9"))
    assert not ensure_router(tmp_path, {"control": 2, "test": 2})
    assert "[0, 9]" in (tmp_path / "router.toml").read_text()


def test_unreadable_metadata_names_the_file(tmp_path):
    publish_version(tmp_path, "control", 3, writer("a"))
    (tmp_path / "control/1/metadata.json").write_text("{not json")
    with pytest.raises(FeedrankError, match="metadata.json"):
        latest_metadata(tmp_path / "control")
