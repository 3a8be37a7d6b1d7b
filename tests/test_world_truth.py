"""The planted ground truth is queryable and its effects are recoverable from the feed alone."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from feedrank.cli import main
from feedrank.errors import FeedrankError
from feedrank.world import catalog
from feedrank.world.ground_truth import HOUR_PEAK, GroundTruth
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def views(small_world: Path) -> pd.DataFrame:
    """Every view of the issue-size world with its topic and the true P(like) at that moment."""
    layout = WorldLayout(small_world)
    frame = (
        duckdb.connect()
        .execute(f"""
        SELECT f.timestamp, f.user_id, f.post_id, f.target, p.topic
        FROM '{layout.feed_glob}' f JOIN '{layout.posts}' p USING (post_id)
        WHERE f.action = 'view' ORDER BY f.timestamp""")
        .df()
    )
    truth = GroundTruth.load(small_world)
    frame["truth"] = truth.like_probability(
        frame["user_id"].to_numpy(),
        frame["post_id"].to_numpy(),
        frame["timestamp"].to_numpy("datetime64[us]"),
    )
    return frame


def test_like_probability_broadcasts_and_rejects_unknown_ids(small_world: Path) -> None:
    truth = GroundTruth.load(small_world)
    users, posts = truth.user_ids[:4], truth.post_ids[:6]
    at = np.datetime64("2021-12-01T20:00:00")
    grid = truth.like_probability(users[:, None], posts[None, :], at)
    assert grid.shape == (4, 6) and grid.dtype == np.float64
    assert ((grid > 0) & (grid < 1)).all()
    assert grid[2, 3] == truth.like_probability(users[2], posts[3], at)
    morning = truth.like_probability(
        users[:, None], posts[None, :], np.datetime64("2021-12-01T08:00")
    )
    october = truth.like_probability(
        users[:, None], posts[None, :], np.datetime64("2021-10-01T20:00")
    )
    assert not np.allclose(grid, morning) and (october < grid).all()
    with pytest.raises(FeedrankError, match="unknown user id"):
        truth.like_probability(np.array([-1]), posts[:1], at)
    with pytest.raises(FeedrankError, match="unknown post id"):
        truth.like_probability(users[:1], np.array([10**9]), at)


def test_simulated_users_like_at_the_true_rate_and_hits_combine_a_feed(small_world) -> None:
    truth = GroundTruth.load(small_world)
    users, posts = truth.user_ids[:200], truth.post_ids[:50]
    at = np.datetime64("2021-11-02T21:15")
    probability = truth.like_probability(users[:, None], posts[None, :], at)
    likes = truth.sample_likes(users[:, None], posts[None, :], at, np.random.default_rng(1))
    assert likes.shape == probability.shape and likes.dtype == bool
    assert abs(likes.mean() - probability.mean()) < 4 * np.sqrt(0.25 / likes.size)
    feeds = np.tile(posts[:5], (200, 1))
    hits = truth.hit_probability(users, feeds, np.full(200, at))
    assert np.allclose(hits, 1 - np.prod(1 - probability[:, :5], axis=1))


def test_truth_cli_prints_the_same_probability(small_world: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    truth = GroundTruth.load(small_world)
    user, post = int(truth.user_ids[5]), int(truth.post_ids[7])
    expected = truth.like_probability(user, post, np.datetime64("2021-11-20T13:00"))
    assert (
        main(
            [
                "world",
                "truth",
                str(small_world),
                "--user",
                str(user),
                "--post",
                str(post),
                "--time",
                "2021-11-20T13:00",
            ]
        )
        == 0
    )
    assert f"{expected:.4f}" in capsys.readouterr().out


def test_feed_likes_match_the_truth_overall(views: pd.DataFrame) -> None:
    # likes are Bernoulli draws from the truth: the means agree within sampling error
    se = np.sqrt(views["truth"].mean() * (1 - views["truth"].mean()) / len(views))
    assert abs(views["target"].mean() - views["truth"].mean()) < 4 * se


def test_like_rate_differs_by_topic_as_planted(views: pd.DataFrame) -> None:
    by_topic = views.groupby("topic").agg(
        rate=("target", "mean"), planted=("truth", "mean"), n=("target", "size")
    )
    se = np.sqrt(by_topic["rate"] * (1 - by_topic["rate"]) / by_topic["n"])
    assert (abs(by_topic["rate"] - by_topic["planted"]) < 4 * se).all()
    assert by_topic["rate"].idxmax() == by_topic["planted"].idxmax()
    assert by_topic["rate"].idxmin() == by_topic["planted"].idxmin()
    assert by_topic["rate"].max() - by_topic["rate"].min() > 6 * se.max()


@pytest.mark.parametrize("topic", ["movie", "covid"])
def test_like_rate_by_hour_peaks_where_planted(views: pd.DataFrame, topic: str) -> None:
    peak = int(HOUR_PEAK[catalog.TOPICS.index(topic)])
    hours = views[views["topic"] == topic]["timestamp"].dt.hour
    distance = np.minimum(abs(hours - peak), 24 - abs(hours - peak))
    near = views.loc[hours.index[distance <= 2], "target"].mean()
    far = views.loc[hours.index[distance >= 9], "target"].mean()
    assert near > far * 1.25


def test_like_rate_rises_from_november(views: pd.DataFrame) -> None:
    rate = views.groupby(views["timestamp"].dt.month)["target"].mean()
    assert rate[11] > rate[10] * 1.1 and rate[12] > rate[10] * 1.1


def test_oracle_ranks_held_out_likes_far_above_random(views: pd.DataFrame) -> None:
    december = views[views["timestamp"].dt.month == 12]
    assert roc_auc_score(december["target"], december["truth"]) > 0.65
    rng = np.random.default_rng(0)
    assert abs(roc_auc_score(december["target"], rng.random(len(december))) - 0.5) < 0.03


def test_post_quality_and_user_taste_are_learnable_from_history(views: pd.DataFrame) -> None:
    train = views[views["timestamp"] < "2021-12-01"]
    test = views[views["timestamp"] >= "2021-12-01"].copy()
    prior = train["target"].mean()

    def smoothed(keys: list[str], strength: float) -> pd.Series:
        stats = train.groupby(keys)["target"].agg(["sum", "count"])
        rate = (stats["sum"] + strength * prior) / (stats["count"] + strength)
        return test.join(rate.rename("r"), on=keys)["r"].fillna(prior)

    post_only = smoothed(["post_id"], 20)
    with_taste = np.log(post_only) + np.log(smoothed(["user_id", "topic"], 10)) - np.log(prior)
    auc_post = roc_auc_score(test["target"], post_only)
    auc_taste = roc_auc_score(test["target"], with_taste)
    auc_oracle = roc_auc_score(test["target"], test["truth"])
    assert 0.55 < auc_post < auc_taste < auc_oracle


def test_the_logit_splits_into_shared_personal_and_post_terms_as_saved(tiny_world: Path) -> None:
    """logit_at = shared_at + personal + post_score, each recomputed from the saved tables."""
    truth = GroundTruth.load(tiny_world)
    folder = tiny_world / "ground_truth"
    params = json.loads((folder / "params.json").read_text())
    users = pd.read_parquet(folder / "users.parquet")
    posts = pd.read_parquet(folder / "posts.parquet")
    rng = np.random.default_rng(0)
    u, p = rng.integers(0, len(users), 500), rng.integers(0, len(posts), 500)
    hour, month = rng.integers(0, 24, 500), rng.integers(10, 13, 500)
    topic = posts["topic"].to_numpy()[p]
    k = np.array([params["topics"].index(t) for t in topic])
    demo = users[[f"demo_{t}" for t in params["topics"]]].to_numpy()[u, k]
    taste = users[[f"taste_{t}" for t in params["topics"]]].to_numpy()[u, k]
    sub = [
        params["subthemes"].index(f"{t}/{s}")
        for t, s in zip(topic, posts["subtheme"].to_numpy()[p])
    ]
    sent = posts["sentiment"].to_numpy()[p]
    taste_sub = users[[f"taste_sub_{j}" for j in range(len(params["subthemes"]))]].to_numpy()
    personal = (
        users["bias"].to_numpy()[u]
        + taste
        + taste_sub[u, sub]
        + users["taste_sent"].to_numpy()[u] * sent
    )
    score = posts["quality"].to_numpy()[p] + np.asarray(params["sub_effect"])[sub]
    score += params["sent_effect"] * sent
    months = params["month_effect"]
    shared = params["base"] + demo + np.asarray(params["hour_topic"])[hour, k]
    shared += np.array([months[str(m)] for m in month])
    np.testing.assert_allclose(truth.personal(u, p), personal, atol=1e-12)
    np.testing.assert_allclose(truth.shared_at(u, p, hour, month), shared, atol=1e-12)
    np.testing.assert_allclose(truth.post_score[p], score, atol=1e-12)
    np.testing.assert_allclose(
        truth.logit_at(u, p, hour, month), shared + personal + score, atol=1e-12
    )
    assert np.abs(personal).max() > 0.1  # the users' own terms are there to split off
