"""Serving features: ModelInputs rows equal the training set's rows (offline/online parity)."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import polars as pl
import pytest

from feedrank.errors import FeedrankError
from feedrank.features.build import build_features
from feedrank.features.layout import FeaturesLayout
from feedrank.features.online import ModelInputs, OnlineFeatures, UnknownUser
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def files(tiny_world):
    return FeaturesLayout(build_features(tiny_world, progress=False))


@pytest.fixture(scope="module")
def online(tiny_world, files):
    return OnlineFeatures.load(tiny_world)


@pytest.mark.parametrize("model", ["control", "test"])
def test_request_matrix_rows_equal_training_rows(files, online, model):
    specs = json.loads(files.manifest.read_text())["models"][model]
    inputs = ModelInputs(online, specs, files.post_features(model))
    assert inputs.feature_names == [s["name"] for s in specs]
    training = pl.read_parquet(files.training_set(model))
    for row in training.sample(60, seed=5).iter_rows(named=True):
        matrix = inputs.matrix(row["user_id"], np.datetime64(row["timestamp"], "us"))
        assert matrix.dtype == np.float32 and matrix.shape == (inputs.post_ids.size, len(specs))
        served = matrix[np.flatnonzero(inputs.post_ids == row["post_id"])[0]]
        offline = np.array([row[s["name"]] for s in specs], dtype=np.float32)
        np.testing.assert_array_equal(served, offline)


def test_model_inputs_from_a_version_dir(tmp_path, files, online):
    specs = json.loads(files.manifest.read_text())["models"]["control"]
    (tmp_path / "metadata.json").write_text(json.dumps({"features": specs}))
    pl.read_parquet(files.posts_control).write_parquet(tmp_path / "post_features.parquet")
    inputs = ModelInputs.from_version_dir(online, tmp_path)
    at = np.datetime64(online.cutoff, "us")
    direct = ModelInputs(online, specs, files.posts_control)
    user = int(online.user_ids[0])
    np.testing.assert_array_equal(inputs.matrix(user, at), direct.matrix(user, at))


def test_an_unknown_user_is_refused(files, online):
    specs = json.loads(files.manifest.read_text())["models"]["control"]
    inputs = ModelInputs(online, specs, files.posts_control)
    assert not online.has_user(-1) and online.has_user(int(online.user_ids[-1]))
    with pytest.raises(UnknownUser, match="-1"):
        inputs.matrix(-1, online.cutoff)


def test_liked_before_is_the_users_likes_strictly_before(tiny_world, online):
    likes = duckdb.sql(
        f"SELECT user_id, post_id, timestamp FROM "
        f"read_parquet('{WorldLayout(tiny_world).feed_glob}') "
        "WHERE action = 'like'"
    ).pl()
    busiest = likes.group_by("user_id").len().sort("len", descending=True)["user_id"][0]
    mine = likes.filter(pl.col("user_id") == busiest).sort("timestamp")
    at = mine["timestamp"][mine.height // 2]
    expected = np.unique(mine.filter(pl.col("timestamp") < at)["post_id"].to_numpy())
    np.testing.assert_array_equal(online.liked_before(busiest, np.datetime64(at, "us")), expected)


def test_most_liked_ranks_the_given_posts_by_likes_before_the_day(tiny_world, online):
    at = np.datetime64(online.cutoff, "us") - np.timedelta64(2, "D")
    posts = duckdb.sql(
        f"SELECT post_id FROM read_parquet('{WorldLayout(tiny_world).posts}') ORDER BY 1"
    ).fetchnumpy()["post_id"]
    ranked = online.history.most_liked(posts, np.datetime64(at, "D"))
    assert sorted(ranked.tolist()) == posts.tolist()
    likes = duckdb.sql(
        f"SELECT post_id, count(*) AS n FROM "
        f"read_parquet('{WorldLayout(tiny_world).feed_glob}') WHERE action = 'like'"
        f" AND timestamp < TIMESTAMP '{np.datetime64(at, 'D')}' GROUP BY 1"
    ).pl()
    counts = dict(zip(likes["post_id"].to_list(), likes["n"].to_list()))
    ranked_counts = [counts.get(p, 0) for p in ranked.tolist()]
    assert ranked_counts == sorted(ranked_counts, reverse=True) and ranked_counts[0] > 0


def test_a_model_with_features_this_world_lacks_is_refused(files, online):
    specs = json.loads(files.manifest.read_text())["models"]["control"]
    foreign = [*specs, {"name": "country_Atlantis", "source": "user"}]
    with pytest.raises(FeedrankError, match=r"country_Atlantis \(user\)"):
        ModelInputs(online, foreign, files.posts_control)
