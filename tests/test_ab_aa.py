"""A/A at the statistics level: both groups see the same feed policy, likes come from the world's
ground truth, the report's own attribution and tests run on each of 200 seeds (no HTTP: the
server's part is covered once by the end-to-end test). The user-level Welch test must then
reject at about its nominal 5%, and so must its CUPED variant (covariate: the users' like rates
in the world's feed before the experiment); the SRM check must stay quiet unless the split is
broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from feedrank.ab.attribution import attribute, connect_frames, like_files
from feedrank.ab.covariate import PrePeriod, pre_period
from feedrank.ab.expected import expected_metrics
from feedrank.ab.report import METRICS, Report, analyse
from feedrank.server.router import bucket
from feedrank.world.generate import LIKE_DELAY_S
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.simulated_users import Population, draw_likes, feed_events

SEEDS = 200
ALPHA = 0.05
DAYS = np.arange(np.datetime64("2021-12-27"), np.datetime64("2021-12-30"))
SPLIT = {"control": 0.5, "test": 0.5}
# If the test's real false-positive rate is 5%, the count of rejections in 200 independent A/A
# runs is Binomial(200, 0.05): it falls in [2, 21] (1% to 10.5%) with probability 99.9%, so this
# band fails an honest test once in a thousand runs, while a test whose rate is 10% or more (e.g.
# one treating a user's exposures as independent) falls outside it often.
BAND = (int(binom.ppf(0.0005, SEEDS, ALPHA)), int(binom.isf(0.0005, SEEDS, ALPHA)))


def aa_experiment(
    truth: GroundTruth, feed: list[Path], seed: int, users: int = 400
) -> tuple[pd.DataFrame, pd.DataFrame, PrePeriod]:
    """One A/A experiment's per-user and daily tables and CUPED covariate: random assignment by
    the router's md5 with a per-seed salt, the same feed policy in both groups (5 distinct random
    posts), likes drawn from the ground truth, like rates from the world's `feed` files."""
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    requests = Population.sample(truth.user_ids, users, rng[0]).requests(DAYS, rng[0])
    n = len(requests)
    shown = truth.post_ids[
        np.argpartition(rng[1].random((n, len(truth.post_ids))), 5, axis=1)[:, :5]
    ]
    group = {
        u: "control" if bucket(u, f"aa-{seed}") < 50 else "test"
        for u in np.unique(requests["user_id"]).tolist()
    }
    exposures = requests.assign(
        request_id=[f"r{i}" for i in range(n)],
        exp_group=requests["user_id"].map(group),
        post_ids=list(shown),
    )
    views = pd.DataFrame(
        {
            "user_id": np.repeat(requests["user_id"].to_numpy(), 5),
            "post_id": shown.ravel(),
            "timestamp": np.repeat(requests["requested_time"].to_numpy(), 5),
        }
    )
    delays = rng[2].integers(LIKE_DELAY_S[0], LIKE_DELAY_S[1] + 1, len(views))
    events = feed_events(views, draw_likes(truth, views, rng[2]), delays)
    con = connect_frames(exposures, events)
    return *attribute(con, 3600), pre_period(con, feed)


def aa_run(truth: GroundTruth, feed: list[Path], seed: int) -> Report:
    per_user, daily, pre = aa_experiment(truth, feed, seed)
    return analyse(per_user, daily, window_s=3600, shares=SPLIT, seed=seed, pre_period=pre)


@pytest.fixture(scope="module")
def aa_reports(tiny_world: Path) -> list[Report]:
    truth, feed = GroundTruth.load(tiny_world), like_files(tiny_world, None)
    return [aa_run(truth, feed, seed) for seed in range(SEEDS)]


@pytest.mark.parametrize("metric", list(METRICS))
def test_aa_false_positive_rate_is_nominal(aa_reports: list[Report], metric: str) -> None:
    rejections = sum(r.comparison("test", metric).welch.p_value < ALPHA for r in aa_reports)
    print(f"A/A {metric}: {rejections} of {SEEDS} rejected at {ALPHA}; band {BAND}")
    assert BAND[0] <= rejections <= BAND[1], f"{rejections} of {SEEDS} A/A runs rejected"


@pytest.mark.parametrize("metric", list(METRICS))
def test_aa_cuped_false_positive_rate_is_nominal(aa_reports: list[Report], metric: str) -> None:
    """The same band for CUPED: fitting theta on the data it adjusts must not make the test
    reject more often than its nominal rate."""
    cuped = [r.comparison("test", metric).cuped for r in aa_reports]
    rejections = sum(c.welch.p_value < ALPHA for c in cuped)
    reduction = np.mean([c.variance_reduction for c in cuped])
    print(
        f"A/A CUPED {metric}: {rejections} of {SEEDS} rejected at {ALPHA}; band {BAND}; "
        f"mean variance reduction {reduction:.1%}"
    )
    assert BAND[0] <= rejections <= BAND[1], f"{rejections} of {SEEDS} A/A runs rejected"


def test_aa_runs_are_real_experiments(aa_reports: list[Report]) -> None:
    """Guards the band against a degenerate simulation (no likes, one group, constant data)."""
    report = aa_reports[0]
    assert {g.name for g in report.groups} == {"control", "test"}
    assert all(g.users > 100 and 0.05 < g.metrics["hit_rate"].mean < 0.95 for g in report.groups)
    p_values = [r.comparison("test", "hit_rate").welch.p_value for r in aa_reports]
    assert len(set(p_values)) == SEEDS


def test_srm_quiet_on_a_correct_split(aa_reports: list[Report]) -> None:
    # alarms at p < 0.001: Binomial(200, 0.001) exceeds 3 with probability < 0.1%
    assert sum(r.srm.alarm for r in aa_reports) <= int(binom.isf(0.001, SEEDS, 0.001))


def test_srm_alarm_on_a_broken_split(tiny_world: Path) -> None:
    """A logging bug loses 30% of the test group's users: the split check must fire."""
    per_user, daily, _ = aa_experiment(
        GroundTruth.load(tiny_world), like_files(tiny_world, None), seed=1, users=600
    )
    healthy = analyse(per_user, daily, window_s=3600, shares=SPLIT)
    assert not healthy.srm.alarm
    test_users = per_user.loc[per_user["exp_group"] == "test", "user_id"]
    lost = test_users.sample(frac=0.3, random_state=1)
    broken = analyse(per_user[~per_user["user_id"].isin(lost)], daily, window_s=3600, shares=SPLIT)
    assert broken.srm.alarm and broken.srm.p_value < 0.001
    assert broken.srm.observed["test"] == healthy.srm.observed["test"] - len(lost)


def test_expected_metrics_combine_the_true_probabilities_of_the_shown_posts(
    tiny_world: Path,
) -> None:
    truth = GroundTruth.load(tiny_world)
    users, posts = truth.user_ids[:4], truth.post_ids[:5]
    at = np.datetime64("2021-12-27T20:00:00", "us")
    views = pd.DataFrame(
        {  # users 0 and 2 see two feeds, users 1 and 3 one
            "exposure": np.repeat([0, 1, 2, 3, 4, 5], 5),
            "user_id": np.repeat(users[[0, 0, 1, 2, 2, 3]], 5),
            "post_id": np.tile(posts, 6),
            "timestamp": at,
        }
    )
    groups = pd.Series(["control", "control", "test", "test"], index=users)
    result = expected_metrics(truth, views, groups)
    p = truth.like_probability(users[:, None], posts[None, :], at)
    hit = 1 - np.prod(1 - p, axis=1)  # the same for both feeds of a user
    likes = p.sum(axis=1) * np.array([2, 1, 2, 1])
    assert result["expected_hit_rate"]["groups"]["control"]["mean"] == pytest.approx(hit[:2].mean())
    assert result["expected_hit_rate"]["differences"]["test"]["difference"] == pytest.approx(
        hit[2:].mean() - hit[:2].mean()
    )
    assert result["expected_likes"]["groups"]["test"]["mean"] == pytest.approx(likes[2:].mean())
    assert result["expected_likes"]["differences"]["test"]["difference"] == pytest.approx(
        likes[2:].mean() - likes[:2].mean()
    )
