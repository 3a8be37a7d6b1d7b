"""build_features: the tables it writes, their encodings, skipping, and bad input."""

from __future__ import annotations

import json
import os
import shutil

import duckdb
import numpy as np
import polars as pl
import pytest

from feedrank.errors import InputFileError
from feedrank.features.build import build_features
from feedrank.features.layout import FeaturesLayout
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def features(tiny_world):
    return FeaturesLayout(build_features(tiny_world, progress=False))


def test_manifest_lists_both_models_and_the_test_model_extends_control(features):
    manifest = json.loads(features.manifest.read_text())
    control, test = manifest["models"]["control"], manifest["models"]["test"]
    assert test[: len(control)] == control
    assert {f["source"] for f in control} == {"user", "post", "time", "history", "recent"}
    assert {f["source"] for f in test} == {"user", "post", "time", "history", "recent", "affinity"}
    # counts and the month drift between the training and serving windows: not model inputs
    drifting = {"hist_user_views", "hist_post_likes", "hist_user_topic_views", "time_month"}
    assert not drifting & {f["name"] for f in test}
    assert any(f["name"].startswith("emb_pca_") for f in test)
    assert not any(f["name"].startswith("emb_") for f in control)
    names = [f["name"] for f in test]
    assert len(names) == len(set(names))


def test_training_set_has_every_feature_numeric_and_ordered_by_time(features):
    manifest = json.loads(features.manifest.read_text())
    table = pl.read_parquet(features.training_set("test"))
    names = [f["name"] for f in manifest["models"]["test"]]
    assert table.columns == ["timestamp", "user_id", "post_id", "target", *names]
    assert all(table[n].dtype == pl.Float32 for n in names)
    assert table["timestamp"].is_sorted()
    assert table.height == manifest["training_rows"]


def test_training_set_holds_every_view_of_a_small_world(tiny_world, features):
    views = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{WorldLayout(tiny_world).feed_glob}')"
        " WHERE action = 'view'"
    ).fetchall()[0][0]
    assert pl.read_parquet(features.training_set("test")).height == views


def test_one_hot_groups_have_exactly_one_hot_column_per_row(tiny_world, features):
    users = pl.read_parquet(features.users)
    raw = pl.read_parquet(WorldLayout(tiny_world).users).sort("user_id")
    for column in ("country", "os", "source", "exp_group"):
        group = [c for c in users.columns if c.startswith(f"{column}_")]
        assert len(group) == raw[column].n_unique()
        assert (users.select(group).sum_horizontal() == 1).all()
    russia = users["country_Russia"].to_numpy() == 1
    assert (russia == (raw["country"] == "Russia").to_numpy()).all()


def test_city_frequency_is_the_share_of_users_in_the_city(tiny_world, features):
    users = pl.read_parquet(features.users)
    raw = pl.read_parquet(WorldLayout(tiny_world).users).sort("user_id")
    expected = raw.select(pl.len().over("city") / pl.len())["len"].to_numpy()
    np.testing.assert_allclose(users["city_freq"].to_numpy(), expected, rtol=1e-6)


def test_topic_code_and_one_hot_agree(tiny_world, features):
    posts = pl.read_parquet(features.posts_control)
    raw = pl.read_parquet(WorldLayout(tiny_world).posts).sort("post_id")
    topics = sorted(raw["topic"].unique())
    codes = posts["topic_code"].to_numpy().astype(int)
    assert [topics[c] for c in codes] == raw["topic"].to_list()
    one_hot = posts.select([f"topic_{t}" for t in topics]).to_numpy()
    assert (one_hot.argmax(axis=1) == codes).all() and (one_hot.sum(axis=1) == 1).all()


def test_unchanged_inputs_skip_the_build_and_a_changed_input_rebuilds(tiny_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    files = FeaturesLayout(build_features(world, progress=False))

    def stamps() -> tuple[int, int]:
        return files.manifest.stat().st_mtime_ns, files.training_set("test").stat().st_mtime_ns

    first = stamps()
    build_features(world, progress=False)
    assert stamps() == first
    day = sorted(WorldLayout(world).feed_dir.glob("*.parquet"))[-1]
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{day}') LIMIT 10) TO '{day}.tmp' (FORMAT parquet)"
    )
    os.replace(f"{day}.tmp", day)
    before = json.loads(files.manifest.read_text())
    build_features(world, progress=False)
    after = json.loads(files.manifest.read_text())
    assert after["fingerprint"] != before["fingerprint"]
    assert after["training_rows"] < before["training_rows"]


def test_a_missing_column_is_named_in_the_error(tiny_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    users = WorldLayout(world).users
    pl.read_parquet(users).drop("city").write_parquet(users)
    with pytest.raises(InputFileError, match=r"user_data\.parquet, column 'city'"):
        build_features(world, progress=False)


def test_a_world_without_feed_files_is_refused(tiny_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world, ignore=shutil.ignore_patterns("feed_data", "features"))
    with pytest.raises(InputFileError, match="feed_data"):
        build_features(world, progress=False)
