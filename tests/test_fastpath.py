"""The ranking fast path against CatBoost itself and against CatBoost's plain ONNX export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from catboost import CatBoost

from feedrank.errors import FeedrankError
from feedrank.export.onnx_export import OnnxScorer, export_onnx
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.server.fastpath import FastRanker
from feedrank.server.fastpath_graph import Partition, Trees, build

from fastpath_problem import synthetic_problem
from feed_serving import built_repository

TOP_K = 50
REQUESTS = 25


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n_posts=600, n_groups=8, iterations=200, train_rows=6000, seed=3)


@pytest.fixture(scope="module")
def trees(problem):
    return Trees.from_catboost(problem.model)


@pytest.fixture(scope="module")
def ranker(problem, trees):
    return FastRanker(
        trees, problem.post_matrix, problem.partition, problem.post_group, problem.n_groups
    )


def catboost_raw(problem, matrix):
    return problem.model.predict(matrix, prediction_type="RawFormulaVal", thread_count=1)


def top_k(scores):
    return np.argsort(-scores, kind="stable")[:TOP_K]


def test_scores_equal_catboost_and_top_k_identical(problem, ranker):
    for _ in range(REQUESTS):
        request, pair = problem.request()
        expected = catboost_raw(problem, problem.matrix(request, pair))
        got = ranker.scores(request, pair)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(top_k(got), top_k(expected))


def test_probabilities_equal_plain_onnx_export(problem, ranker, tmp_path):
    path = tmp_path / "model.onnx"
    export_onnx(problem.model, path, name="synthetic")
    plain = OnnxScorer(path)
    for _ in range(10):
        request, pair = problem.request()
        expected = plain.like_probability(problem.matrix(request, pair))
        got = 1 / (1 + np.exp(-ranker.scores(request, pair)))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(top_k(got), top_k(expected))


def test_full_matrix_entry_point_matches(problem, ranker):
    request, pair = problem.request()
    np.testing.assert_array_equal(
        ranker.scores_for_matrix(problem.matrix(request, pair)), ranker.scores(request, pair)
    )


def test_catalogue_change_is_reflected(problem, trees):
    rng = np.random.default_rng(11)
    removed = 17
    keep = np.delete(np.arange(len(problem.post_matrix)), removed)
    noise = rng.normal(size=problem.post_matrix.shape[1]).astype(np.float32)
    new_post = problem.post_matrix[rng.integers(len(keep))] + noise
    posts = np.vstack([problem.post_matrix[keep], new_post]).astype(np.float32)
    groups = np.append(problem.post_group[keep], 2)
    ranker = FastRanker(trees, posts, problem.partition, groups, problem.n_groups)
    request, pair = problem.request()
    matrix = posts.copy()
    matrix[:, problem.partition.columns("request")] = request
    matrix[:, problem.partition.columns("pair")] = pair[groups]
    got = ranker.scores(request, pair)
    assert got.shape == (len(posts),)
    np.testing.assert_allclose(got, catboost_raw(problem, matrix), rtol=0, atol=1e-5)


def test_merging_and_table_budget_do_not_change_scores(problem, trees, ranker):
    unmerged = FastRanker(
        trees,
        problem.post_matrix,
        problem.partition,
        problem.post_group,
        problem.n_groups,
        merge_cost=0,
    )
    tight = FastRanker(
        trees,
        problem.post_matrix,
        problem.partition,
        problem.post_group,
        problem.n_groups,
        merge_cost=64,
        max_table_bytes=unmerged.table_bytes,
    )
    assert len(ranker.fastpath.groups) < len(unmerged.fastpath.groups)
    assert tight.table_bytes <= unmerged.table_bytes
    request, pair = problem.request()
    for other in (unmerged, tight):
        np.testing.assert_allclose(
            other.scores(request, pair), ranker.scores(request, pair), rtol=0, atol=1e-6
        )


def test_embedded_graph_runs_alone(problem, trees, ranker):
    fastpath = build(
        trees, problem.post_matrix, problem.partition, problem.post_group, problem.n_groups
    )
    session = ort.InferenceSession(
        fastpath.embedded().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    request, pair = problem.request()
    (scores,) = session.run(["scores"], {"request": request, "pair": pair})
    np.testing.assert_array_equal(scores, ranker.scores(request, pair))


@pytest.fixture(scope="module")
def dense_problem():
    return synthetic_problem(
        n_posts=600, n_groups=8, iterations=150, train_rows=8000, seed=4, dense=2
    )


def test_dense_columns_equal_catboost_and_merging_keeps_them(dense_problem):
    """Per (request, post) columns: the trees that test them are read post by post."""
    problem = dense_problem
    trees = Trees.from_catboost(problem.model)
    ranker = FastRanker(
        trees, problem.post_matrix, problem.partition, problem.post_group, problem.n_groups
    )
    unmerged = FastRanker(
        trees,
        problem.post_matrix,
        problem.partition,
        problem.post_group,
        problem.n_groups,
        merge_cost=0,
    )
    assert 0 < len(ranker.fastpath.dense_groups) < len(unmerged.fastpath.dense_groups)
    dense_trees = {t for g in ranker.fastpath.dense_groups for t in g.trees}
    static_trees = {t for g in ranker.fastpath.groups for t in g.trees}
    assert dense_trees.isdisjoint(static_trees)
    assert dense_trees | static_trees == set(range(len(trees.leaves)))
    for _ in range(REQUESTS):
        request, pair = problem.request()
        dense = problem.dense()
        expected = catboost_raw(problem, problem.matrix(request, pair, dense))
        for scorer in (ranker, unmerged):
            got = scorer.scores(request, pair, dense)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
            np.testing.assert_array_equal(top_k(got), top_k(expected))
        np.testing.assert_array_equal(
            ranker.scores_for_matrix(problem.matrix(request, pair, dense)),
            ranker.scores(request, pair, dense),
        )
    with pytest.raises(FeedrankError, match="dense"):
        ranker.scores(request, pair)


def test_model_without_pair_columns(problem):
    request_only = Partition(tuple("post" if k == "pair" else k for k in problem.partition.kinds))
    posts = problem.matrix(*problem.request())  # pair columns now fixed per post
    ranker = FastRanker(Trees.from_catboost(problem.model), posts, request_only)
    request, _ = problem.request()
    matrix = posts.copy()
    matrix[:, request_only.columns("request")] = request
    np.testing.assert_allclose(
        ranker.scores(request), catboost_raw(problem, matrix), rtol=0, atol=1e-5
    )


def test_bad_inputs_are_refused_by_shape_and_kind(ranker):
    with pytest.raises(FeedrankError, match="unknown column kinds"):
        Partition(("request", "weather"))  # type: ignore[arg-type]
    with pytest.raises(FeedrankError, match="expected request, pair and dense values"):
        ranker.scores(np.zeros(3, np.float32), np.zeros((8, 8), np.float32))


def test_ranking_kernel_benchmark_quick_mode(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "ranking_kernel.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    result = json.loads((tmp_path / "ranking_kernel-quick.json").read_text())
    assert [run["threads"] for run in result["runs"]] == [1, 2]
    assert all(
        run["top_k_identical"] and run["max_abs_raw_diff_vs_catboost"] < 1e-5
        for run in result["runs"]
    )
    assert (tmp_path / "ranking_kernel-quick.png").stat().st_size > 0
    assert "fastpath" in (tmp_path / "ranking_kernel-quick.md").read_text()


@pytest.mark.parametrize("model", ["control", "test"])
def test_feedrank_models_on_a_built_repository(tiny_world, model):
    """The real models and features: per (user, time) of one hour the fast path's scores equal
    CatBoost's and the published model.onnx's, and the top-k lists are identical (the posts'
    recent activity is as of the hour: one ranker per hour; the test model's affinity columns
    are dense, read post by post)."""
    version_dir = built_repository(tiny_world) / model / "1"
    online = OnlineFeatures.load(tiny_world)
    inputs = ModelInputs.from_version_dir(online, version_dir)
    hour_start = (
        (online.cutoff - np.timedelta64(1, "h")).astype("datetime64[h]").astype("datetime64[us]")
    )
    snapshot = inputs.request(int(online.user_ids[0]), hour_start).snapshot
    kinds = set(snapshot.layout.kinds)
    assert "pair" in kinds and snapshot.layout.n_groups > 1
    assert ("dense" in kinds) == (model == "test")
    ranker = FastRanker.for_snapshot(version_dir, snapshot)
    catboost_model = CatBoost().load_model(str(version_dir / "model.cbm"))
    plain = OnnxScorer(version_dir / "model.onnx")
    rng = np.random.default_rng(5)
    for user in rng.choice(online.user_ids, 12):
        at = hour_start + np.timedelta64(int(rng.integers(0, 3_600)), "s")
        request = inputs.request(int(user), min(at, online.cutoff))
        assert request.snapshot is snapshot  # one snapshot per hour, shared
        matrix = request.matrix()
        got = ranker.scores_for_request(request)
        np.testing.assert_array_equal(got, ranker.scores_for_matrix(matrix))
        expected = catboost_model.predict(matrix, prediction_type="RawFormulaVal")
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            1 / (1 + np.exp(-got)), plain.like_probability(matrix), rtol=0, atol=1e-5
        )
        np.testing.assert_array_equal(top_k(got), top_k(expected))
