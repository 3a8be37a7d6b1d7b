"""`feedrank build` and `feedrank evaluate` end to end on the issue-size small world."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx
import pytest
from catboost import CatBoostClassifier
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import feedrank.export.build as build_module
from feedrank.cli import main
from feedrank.export.onnx_export import export_onnx
from feedrank.model_config import (
    CONFIG_FILE,
    RANKER_PARAMETER,
    declared_ranker,
    format_config,
    read_config,
)


def build(world: Path, repository: Path, iterations: int = 60) -> int:
    return main(
        [
            "build",
            "--world",
            str(world),
            "--repository",
            str(repository),
            "--iterations",
            str(iterations),
        ]
    )


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if p.is_dir())


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def built(small_world: Path, tmp_path_factory) -> tuple[Path, Path]:
    repository = tmp_path_factory.mktemp("repository")
    assert build(small_world, repository) == 0
    return small_world, repository


@pytest.fixture
def repository_copy(built, tmp_path) -> Path:
    return Path(shutil.copytree(built[1], tmp_path / "repository"))


@pytest.mark.parametrize("name", ["control", "test"])
def test_build_publishes_a_parity_checked_version_with_a_triton_config(built, name):
    _, repository = built
    config = text_format.Parse(
        (repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    meta = json.loads((repository / name / "1" / "metadata.json").read_text())
    n_features = len(meta["features"])
    assert (config.name, config.backend) == (name, "onnxruntime")
    assert list(config.input[0].dims) == [-1, n_features]
    graph = onnx.load(str(repository / name / "1" / "model.onnx")).graph
    assert graph.input[0].name == config.input[0].name == meta["input_name"]
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == n_features
    assert meta["parity"]["passed"] and meta["parity"]["rows"] >= 10_000
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["parity"]["top5_mismatches"] == 0
    training, validation, evaluation = (
        meta["windows"][k] for k in ("training", "validation", "evaluation")
    )
    assert training[1] == validation[0] and validation[1] == evaluation[0]
    files = {p.name for p in (repository / name / "1").iterdir()}
    assert {"model.onnx", "model.cbm", "metadata.json", "post_features.parquet"} <= files
    pipeline = {p.name for p in (repository / name / "1" / "text_pipeline").iterdir()}
    assert {"text_features.onnx", "words.json", "pipeline.json"} <= pipeline
    assert ("all-MiniLM-L6-v2.onnx" in pipeline) == (name == "test")
    assert meta["text_pipeline"]["columns"][:2] == ["text_chars", "text_words"]
    assert (repository / "router.toml").is_file()
    # the summary describes the saved model: cut back to its best validation iteration
    saved = CatBoostClassifier().load_model(str(repository / name / "1" / "model.cbm"))
    summary = meta["training"]
    assert summary["trees_kept"] == saved.tree_count_ <= summary["trees_trained"] == 60
    assert summary["validation_auc"] >= summary["validation_auc_all_trees"]


def test_test_model_sees_more_features_than_control(built):
    _, repository = built
    control, test = (
        json.loads((repository / m / "1" / "metadata.json").read_text())["features"]
        for m in ("control", "test")
    )
    assert len(test) > len(control)


def test_an_unchanged_rebuild_brings_an_older_config_up_to_date(built, repository_copy, capsys):
    """A repository published before models declared their feed ranker gains the declaration
    on the next build, without a new version (else the feed would rank with the plain graph)."""
    world, _ = built
    model_dir = repository_copy / "test"
    config = read_config(model_dir)
    del config.parameters[RANKER_PARAMETER]
    (model_dir / CONFIG_FILE).write_text(format_config(config))
    assert build(world, repository_copy) == 0
    err = flat(capsys.readouterr().err)
    assert "test: inputs unchanged" in err and "test: updated" in err
    assert "control: updated" not in err
    assert declared_ranker(read_config(model_dir)) == "fastpath"
    assert versions(model_dir) == ["1"]


def test_unchanged_inputs_skip_and_changed_params_add_version_2(built, repository_copy, capsys):
    world, _ = built
    before = {m: digests(repository_copy / m / "1") for m in ("control", "test")}
    router = (repository_copy / "router.toml").read_text()
    assert build(world, repository_copy) == 0
    assert "inputs unchanged" in flat(capsys.readouterr().err)
    assert versions(repository_copy / "control") == ["1"]
    assert build(world, repository_copy, iterations=20) == 0
    for model in ("control", "test"):
        assert versions(repository_copy / model) == ["1", "2"]
        assert digests(repository_copy / model / "1") == before[model]
        assert (
            json.loads((repository_copy / model / "2" / "metadata.json").read_text())["catboost"][
                "iterations"
            ]
            == 20
        )
    assert (repository_copy / "router.toml").read_text() == router


def test_an_export_that_differs_from_catboost_is_not_published(
    built, repository_copy, monkeypatch, capsys
):
    def broken_export(model, path, *, name):
        export_onnx(model, path, name=name)
        graph = onnx.load(str(path))
        (trees,) = [n for n in graph.graph.node if n.op_type == "TreeEnsembleClassifier"]
        attributes = {a.name: a for a in trees.attribute}
        for i, (tree, label) in enumerate(
            zip(attributes["class_treeids"].ints, attributes["class_ids"].ints)
        ):
            if tree == 0 and label == 1:  # shift the leaves of the first tree
                attributes["class_weights"].floats[i] += 0.05
        onnx.save(graph, str(path))

    monkeypatch.setattr(build_module, "export_onnx", broken_export)
    assert build(built[0], repository_copy, iterations=10) == 2
    assert "differs from CatBoost, not published" in flat(capsys.readouterr().err)
    assert versions(repository_copy / "control") == ["1"]
    assert not any(p.name.startswith(".") for p in (repository_copy / "control").iterdir())


def test_evaluate_prints_the_table_and_saves_json(built, repository_copy, capsys):
    world, _ = built
    evaluate = ["evaluate", "--world", str(world), "--repository", str(repository_copy)]
    evaluate += ["--requests", "400", "--replay-users", "150"]
    assert main(evaluate) == 0
    out = capsys.readouterr().out
    for ranker in ("control", "test", "popularity", "trending", "random", "oracle"):
        assert ranker in out
    assert "logged sessions" in flat(out) and "chosen on validation" in flat(out)
    assert "Offline A/B replay" in flat(out) and "paired t-test" in flat(out)
    assert "…" not in out  # captured like a pipe: the tables are whole, no cell cut short
    rows = {}
    for model in ("control", "test"):
        saved = json.loads((repository_copy / model / "1" / "evaluation.json").read_text())
        meta = json.loads((repository_copy / model / "1" / "metadata.json").read_text())
        assert meta["evaluation"] == saved and saved["requests"] == 400 < saved["sessions"]
        choice, exposure = meta["exposure_choice"], meta["exposure"]
        assert choice["requests"] > 100 and "preference" in choice["hit_rates"]
        assert choice["chosen"] == (
            "preference"
            if exposure["column"] is None
            else f"{exposure['column']}^{exposure['alpha']:g}"
        )
        rows = {r["ranker"]: r for r in saved["rows"]}
    assert rows["test"]["simulated_hit_rate"] > rows["random"]["simulated_hit_rate"]
    assert rows["oracle"]["simulated_hit_rate"] >= rows["test"]["simulated_hit_rate"]
    for row in rows.values():
        rate = row["hit_rate"]
        assert 0 <= rate["low"] <= rate["mean"] <= rate["high"] <= 1
    assert rows["popularity"]["vs_popularity"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    replay = saved["replay"]
    assert 100 < replay["users"] <= 150 < replay["requests"]  # users who asked for a feed
    assert set(replay["means"]) == {"control", "test"} and set(replay["differences"]) == {"test"}
    for metric, paired in replay["differences"]["test"].items():
        means = replay["means"]
        assert paired["difference"] == pytest.approx(
            means["test"][metric] - means["control"][metric], abs=1e-12
        )
        assert paired["low"] <= paired["difference"] <= paired["high"]
    assert 0 < replay["means"]["control"]["expected_hit_rate"] < 1
    for means in replay["means"].values():  # the drawn likes scatter around their expectation
        assert means["expected_likes"] == pytest.approx(means["likes"], rel=0.25)
    # the same inputs again: the saved evaluation is shown, not redone
    before = (repository_copy / "test" / "1" / "evaluation.json").stat().st_mtime_ns
    assert main(evaluate) == 0
    again = flat(capsys.readouterr().out)
    assert "inputs unchanged" in again and "Offline A/B replay" in again and "oracle" in again
    assert (repository_copy / "test" / "1" / "evaluation.json").stat().st_mtime_ns == before
    # an evaluation saved before a replay metric existed is made again, not shown without it
    path = repository_copy / "test" / "1" / "evaluation.json"
    older = json.loads(path.read_text())
    del older["inputs"]["replay_metrics"]
    for means in older["replay"]["means"].values():
        del means["expected_likes"]
    del older["replay"]["differences"]["test"]["expected_likes"]
    path.write_text(json.dumps(older))
    assert main(evaluate) == 0
    assert "inputs unchanged" not in flat(capsys.readouterr().out)
    assert "expected_likes" in json.loads(path.read_text())["replay"]["means"]["test"]
