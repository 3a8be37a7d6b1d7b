"""History features are point-in-time correct: nothing at or after a row's timestamp counts."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import polars as pl
import pytest

from feedrank.features.build import build_features
from feedrank.features.history import EventIndex
from feedrank.features.layout import FeaturesLayout
from feedrank.features.online import OnlineFeatures
from feedrank.features.rows import feature_rows
from feedrank.features.specs import parse_specs
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def built(tiny_world):
    files = FeaturesLayout(build_features(tiny_world, progress=False))
    manifest = json.loads(files.manifest.read_text())
    return files, manifest, pl.read_parquet(files.training_set)


def _feed(world) -> pl.DataFrame:
    return duckdb.sql(f"SELECT * FROM read_parquet('{WorldLayout(world).feed_glob}')").pl()


def test_counts_are_those_of_events_strictly_before_each_row(tiny_world, built):
    files, _, training = built
    feed, posts = _feed(tiny_world), pl.read_parquet(files.posts_control)
    feed = feed.join(posts.select("post_id", "topic_code"), on="post_id", how="left")
    for row in training.sample(150, seed=3).iter_rows(named=True):
        past = feed.filter(pl.col("timestamp") < row["timestamp"],
                           pl.col("user_id") == row["user_id"])
        topic = posts.filter(pl.col("post_id") == row["post_id"])["topic_code"][0]
        on_topic = past.filter(pl.col("topic_code") == topic)
        expected = {
            "hist_user_views": (past["action"] == "view").sum(),
            "hist_user_likes": (past["action"] == "like").sum(),
            "hist_user_topic_views": (on_topic["action"] == "view").sum(),
            "hist_user_topic_likes": (on_topic["action"] == "like").sum(),
        }
        assert {k: row[k] for k in expected} == expected


def test_post_counts_are_as_of_the_start_of_the_rows_day(tiny_world, built):
    _, _, training = built
    feed = _feed(tiny_world)
    for row in training.sample(100, seed=4).iter_rows(named=True):
        day = row["timestamp"].replace(hour=0, minute=0, second=0, microsecond=0)
        past = feed.filter(pl.col("timestamp") < day, pl.col("post_id") == row["post_id"])
        assert row["hist_post_views"] == (past["action"] == "view").sum()
        assert row["hist_post_likes"] == (past["action"] == "like").sum()


def test_the_future_does_not_change_any_feature(tiny_world, built):
    """Features of rows up to a cut-off, from a snapshot that never saw the events after it,
    equal the training set's: every feature of both models, not only the counts."""
    files, manifest, training = built
    cut = training["timestamp"].to_numpy()[training.height // 2].astype("datetime64[us]")
    early = training.filter(pl.col("timestamp") <= cut.item())
    past_only = OnlineFeatures.load(tiny_world, cutoff=cut)
    specs = parse_specs(manifest["models"]["test"])
    values = feature_rows(past_only, specs, pl.read_parquet(files.posts_test),
                          early["user_id"].to_numpy(), early["post_id"].to_numpy(),
                          early["timestamp"].to_numpy().astype("datetime64[us]"))
    for spec in specs:
        np.testing.assert_array_equal(values[spec.name], early[spec.name].to_numpy(),
                                      err_msg=spec.name)
    assert early.height > 1000


def test_an_event_at_the_query_time_is_not_before_it():
    index = EventIndex(np.array([5, 5, 5, 6]), np.array([10, 20, 30, 10]), bits=8)
    counts = index.count_before(np.array([5, 5, 5, 6, 7]), np.array([20, 21, 1000, 10, 99]))
    assert counts.tolist() == [1, 2, 3, 0, 0]
