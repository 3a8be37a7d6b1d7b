"""History features are point-in-time correct: nothing at or after a row's timestamp counts."""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from feedrank.features.affinity import vector_columns
from feedrank.features.build import build_features
from feedrank.features.event_index import EventIndex
from feedrank.features.layout import FeaturesLayout
from feedrank.features.online import OnlineFeatures
from feedrank.features.recency import recency_block
from feedrank.features.rows import feature_rows
from feedrank.features.specs import parse_specs
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def built(tiny_world):
    files = FeaturesLayout(build_features(tiny_world, progress=False))
    manifest = json.loads(files.manifest.read_text())
    return files, manifest, pl.read_parquet(files.training_set("test"))


def _feed(world) -> pl.DataFrame:
    return duckdb.sql(f"SELECT * FROM read_parquet('{WorldLayout(world).feed_glob}')").pl()


def _rows(training: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    return training.sample(n, seed=seed)


def _values(
    tiny_world, files, rows: pl.DataFrame, names: list[str], source: str, model: str = "test"
) -> dict[str, np.ndarray]:
    return feature_rows(
        OnlineFeatures.load(tiny_world),
        parse_specs([{"name": n, "source": source} for n in names]),
        pl.read_parquet(files.post_features(model)),
        rows["user_id"].to_numpy(),
        rows["post_id"].to_numpy(),
        rows["timestamp"].to_numpy().astype("datetime64[us]"),
    )


def test_counts_are_those_of_events_strictly_before_each_row(tiny_world, built):
    files, _, training = built
    feed, posts = _feed(tiny_world), pl.read_parquet(files.posts_control)
    feed = feed.join(posts.select("post_id", "topic_code"), on="post_id", how="left")
    rows = _rows(training, 150, 3)
    names = ["hist_user_views", "hist_user_likes", "hist_user_topic_views", "hist_user_topic_likes"]
    values = _values(tiny_world, files, rows, names, "history")
    for i, row in enumerate(rows.iter_rows(named=True)):
        past = feed.filter(
            pl.col("timestamp") < row["timestamp"], pl.col("user_id") == row["user_id"]
        )
        topic = posts.filter(pl.col("post_id") == row["post_id"])["topic_code"][0]
        on_topic = past.filter(pl.col("topic_code") == topic)
        expected = [
            (past["action"] == "view").sum(),
            (past["action"] == "like").sum(),
            (on_topic["action"] == "view").sum(),
            (on_topic["action"] == "like").sum(),
        ]
        assert [values[n][i] for n in names] == expected


def test_post_counts_are_as_of_the_start_of_the_rows_day(tiny_world, built):
    files, _, training = built
    feed = _feed(tiny_world)
    rows = _rows(training, 100, 4)
    values = _values(tiny_world, files, rows, ["hist_post_views", "hist_post_likes"], "history")
    for i, row in enumerate(rows.iter_rows(named=True)):
        day = row["timestamp"].replace(hour=0, minute=0, second=0, microsecond=0)
        past = feed.filter(pl.col("timestamp") < day, pl.col("post_id") == row["post_id"])
        assert values["hist_post_views"][i] == (past["action"] == "view").sum()
        assert values["hist_post_likes"][i] == (past["action"] == "like").sum()


def test_recent_activity_is_as_of_the_start_of_the_rows_hour(tiny_world, built):
    files, _, training = built
    feed = _feed(tiny_world)
    rows = _rows(training, 60, 5)
    names = ["recent_like_share_24h", "recent_view_share_1h", "post_hours_since_view"]
    values = _values(tiny_world, files, rows, names, "recent")
    for i, row in enumerate(rows.iter_rows(named=True)):
        hour = row["timestamp"].replace(minute=0, second=0, microsecond=0)
        for name, action, hours in (
            ("recent_like_share_24h", "like", 24),
            ("recent_view_share_1h", "view", 1),
        ):
            window = feed.filter(
                pl.col("timestamp") < hour,
                pl.col("action") == action,
                pl.col("timestamp") >= hour - timedelta(hours=hours),
            )
            mine = (window["post_id"] == row["post_id"]).sum()
            expected = 1000 * mine / max(window.height, 1)
            assert values[name][i] == pytest.approx(expected, rel=1e-6), name
        views = feed.filter(
            pl.col("timestamp") < hour,
            pl.col("action") == "view",
            pl.col("post_id") == row["post_id"],
        )
        since = (hour - views["timestamp"].max()).total_seconds() / 3600 if views.height else 720.0
        assert values["post_hours_since_view"][i] == pytest.approx(min(since, 720.0), rel=1e-6)


def test_affinity_is_the_cosine_with_the_posts_liked_before(tiny_world, built):
    files, _, training = built
    feed = _feed(tiny_world).filter(pl.col("action") == "like")
    posts = pl.read_parquet(files.posts_test)
    vectors = dict(
        zip(
            posts["post_id"].to_list(),
            posts.select(vector_columns(posts)).to_numpy().astype(np.float64),
        )
    )
    unit = {p: v / np.linalg.norm(v) for p, v in vectors.items()}
    rows = _rows(training, 80, 6)
    values = _values(tiny_world, files, rows, ["affinity_liked", "affinity_recent"], "affinity")
    checked = 0
    for i, row in enumerate(rows.iter_rows(named=True)):
        liked = feed.filter(
            pl.col("timestamp") < row["timestamp"], pl.col("user_id") == row["user_id"]
        ).sort("timestamp")["post_id"]
        for name, chosen in (("affinity_liked", liked), ("affinity_recent", liked[-10:])):
            taste = sum((unit[p] for p in chosen), np.zeros(len(unit[row["post_id"]])))
            norm = np.linalg.norm(taste)
            expected = taste @ unit[row["post_id"]] / norm if norm > 0 else 0.0
            assert values[name][i] == pytest.approx(expected, abs=1e-6), name
        checked += len(liked) > 0
    assert checked > 20


def test_the_future_does_not_change_any_feature(tiny_world, built):
    """Features of rows up to a cut-off, from a snapshot that never saw the events after it,
    equal the training set's: every feature of both models, not only the counts."""
    files, manifest, training = built
    cut = training["timestamp"].to_numpy()[training.height // 2].astype("datetime64[us]")
    early = training.filter(pl.col("timestamp") <= cut.item())
    past_only = OnlineFeatures.load(tiny_world, cutoff=cut)
    specs = parse_specs(manifest["models"]["test"])
    values = feature_rows(
        past_only,
        specs,
        pl.read_parquet(files.posts_test),
        early["user_id"].to_numpy(),
        early["post_id"].to_numpy(),
        early["timestamp"].to_numpy().astype("datetime64[us]"),
    )
    for spec in specs:
        np.testing.assert_array_equal(
            values[spec.name], early[spec.name].to_numpy(), err_msg=spec.name
        )
    assert early.height > 1000


def test_an_event_at_the_query_time_is_not_before_it():
    index = EventIndex.build(np.array([5, 5, 5, 6]), np.array([10, 20, 30, 10]), bits=8)
    counts = index.count_before(np.array([5, 5, 5, 6, 7]), np.array([20, 21, 1000, 10, 99]))
    assert counts.tolist() == [1, 2, 3, 0, 0]


def test_a_users_likes_before_a_time_are_the_feeds_oldest_first(tiny_world, built):
    feed, online = _feed(tiny_world), OnlineFeatures.load(tiny_world)
    likes = feed.filter(pl.col("action") == "like")
    for user_id, at in likes.sample(20, seed=5).select("user_id", "timestamp").iter_rows():
        expected = likes.filter(pl.col("user_id") == user_id, pl.col("timestamp") < at).sort(
            "timestamp"
        )
        posts, times = online.likes_before(user_id, np.datetime64(at, "us"))
        assert posts.tolist() == expected["post_id"].to_list()
        assert times.tolist() == expected["timestamp"].dt.truncate("1ms").to_list()


def test_a_share_over_any_window_counts_the_views_of_those_hours(tiny_world, built):
    """The exposure term's week and month windows: the same search as the model's columns."""
    _, _, training = built
    feed = _feed(tiny_world).filter(pl.col("action") == "view")
    rows = _rows(training, 40, 11)
    history = OnlineFeatures.load(tiny_world).history
    times = rows["timestamp"].to_numpy().astype("datetime64[us]")
    names = ("recent_view_share_168h", "recent_view_share_720h")
    values = recency_block(history, rows["post_id"].to_numpy(), times, columns=names)
    assert list(values) == list(names)
    for i, row in enumerate(rows.iter_rows(named=True)):
        hour = row["timestamp"].replace(minute=0, second=0, microsecond=0)
        for name, hours in zip(names, (168, 720)):
            window = feed.filter(
                pl.col("timestamp") < hour, pl.col("timestamp") >= hour - timedelta(hours=hours)
            )
            mine = (window["post_id"] == row["post_id"]).sum()
            assert values[name][i] == pytest.approx(1000 * mine / max(window.height, 1), rel=1e-6)


def _attribute_values(tiny_world) -> pl.DataFrame:
    """Each user's value of each audience attribute, from the world's own user table."""
    users = pl.read_parquet(WorldLayout(tiny_world).users)
    # the band edges 18, 25, 35, 45, 55: the band is how many of them the age reaches
    bands = pl.sum_horizontal([pl.col("age") >= edge for edge in (18, 25, 35, 45, 55)])
    return users.select("user_id", "gender", "country", "os", "source", age_band=bands)


def test_audience_lift_is_that_of_the_users_sharing_each_attribute_before_the_rows_day(
    tiny_world, built
):
    files, _, training = built
    posts = pl.read_parquet(files.posts_control).select("post_id", "topic_code")
    attributes = _attribute_values(tiny_world)
    feed = _feed(tiny_world).join(posts, on="post_id").join(attributes, on="user_id")
    rows = _rows(training, 40, 7).join(attributes, on="user_id").join(posts, on="post_id")
    names = ["hist_audience_topic_lift", "hist_user_like_rate", "hist_user_topic_views"]
    names += ["hist_user_topic_likes", "hist_user_topic_posterior_lift"]
    values = _values(tiny_world, files, rows, names, "history", "control")
    for i, row in enumerate(rows.iter_rows(named=True)):
        day = row["timestamp"].replace(hour=0, minute=0, second=0, microsecond=0)
        on_topic = feed.filter(pl.col("timestamp") < day, pl.col("topic_code") == row["topic_code"])
        views, likes = (on_topic["action"] == "view").sum(), (on_topic["action"] == "like").sum()
        rate = (likes + 0.1) / (views + 1)
        expected = 1.0
        for attribute in ("gender", "age_band", "country", "os", "source"):
            same = on_topic.filter(pl.col(attribute) == row[attribute])
            own_views, own_likes = (
                (same["action"] == "view").sum(),
                (same["action"] == "like").sum(),
            )
            expected *= (own_likes + 200 * rate) / (own_views + 200) / rate
        assert values["hist_audience_topic_lift"][i] == pytest.approx(expected, rel=1e-5)
        # the user's own rate on the topic, smoothed toward the audience's, over the user's rate
        user_rate = values["hist_user_like_rate"][i]
        prior = user_rate * expected
        topic_views, topic_likes = (
            values["hist_user_topic_views"][i],
            values["hist_user_topic_likes"][i],
        )
        posterior = (topic_likes + 5 * prior) / (topic_views + 5) / user_rate
        assert values["hist_user_topic_posterior_lift"][i] == pytest.approx(posterior, rel=1e-5)
