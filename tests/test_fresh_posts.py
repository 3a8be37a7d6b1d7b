"""Posts published during a simulated experiment: the world holds them back with their ground
truth, `ab simulate --new-posts-per-day` publishes them to the real server as the simulated
clock reaches them, and the report says how each group's model treated them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from feedrank.ab.fresh_posts import Releases, fresh_report, oracle_share
from feedrank.cli import main
from feedrank.errors import FeedrankError
from feedrank.server.exposure_log import query
from feedrank.world.generate import generate_world
from feedrank.world.ground_truth import GroundTruth

from feed_serving import built_repository, copy_repository

PER_DAY, DAYS = 3, 2
WORLD = {"users": 300, "posts": 120, "views": 10_000, "seed": 7}


def test_holding_posts_back_leaves_the_published_world_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_world(tmp_path / "none", progress=False, held_back=0, **WORLD)
    generate_world(tmp_path / "some", progress=False, held_back=30, **WORLD)
    for table in ("user_data.parquet", "post_text_df.parquet", "ground_truth/posts.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "none" / table), pd.read_parquet(tmp_path / "some" / table)
        )
    days = sorted((tmp_path / "some" / "feed_data").glob("*.parquet"))
    for path in days:
        assert path.read_bytes() == (tmp_path / "none" / "feed_data" / path.name).read_bytes()
    held = GroundTruth.held_back(tmp_path / "some")
    catalogue = pd.read_parquet(tmp_path / "some" / "post_text_df.parquet")
    assert len(held) == 30 and len(GroundTruth.held_back(tmp_path / "none")) == 0
    assert held["post_id"].min() > catalogue["post_id"].max() and held["post_id"].is_unique
    assert not set(held["text"]) & set(catalogue["text"])
    assert set(held["topic"]) <= set(catalogue["topic"])
    manifest = json.loads((tmp_path / "some" / "world.json").read_text())
    assert manifest["held_back_posts"] == 30
    assert main(["world", "describe", str(tmp_path / "some")]) == 0
    assert "posts held back" in capsys.readouterr().out


def test_a_held_back_post_is_liked_as_a_catalogue_post_of_the_same_kind(tiny_world: Path) -> None:
    truth = GroundTruth.load(tiny_world)
    posts = pd.read_parquet(tiny_world / "ground_truth" / "posts.parquet")
    twins = posts.iloc[[3, 40, 77]].assign(post_id=[10_001, 10_002, 10_003])
    grown = truth.with_posts(twins)
    users = truth.user_ids[:, None]
    at = np.datetime64("2021-12-20T14:30")
    np.testing.assert_allclose(
        grown.like_probability(users, twins["post_id"].to_numpy()[None, :], at),
        truth.like_probability(users, posts["post_id"].to_numpy()[[3, 40, 77]][None, :], at),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="after the catalogue"):
        truth.with_posts(posts.iloc[:1])


def test_releases_are_spread_over_the_days_in_time_order(tiny_world: Path) -> None:
    held = GroundTruth.held_back(tiny_world)
    days = np.array(["2021-12-27", "2021-12-28", "2021-12-29"], "datetime64[D]")
    releases = Releases.plan(held, days, 4, np.random.default_rng(0))
    times = releases.posts["released_at"].to_numpy("datetime64[us]")
    assert len(times) == 12 and (np.diff(times) >= np.timedelta64(0)).all()
    per_day = pd.Series(times.astype("datetime64[D]")).value_counts()
    assert per_day.to_dict() == {d: 4 for d in pd.to_datetime(days)}
    assert releases.posts["post_id"].is_unique and set(releases.posts["post_id"]) <= set(
        held["post_id"]
    )
    assert releases.due(times[0] - np.timedelta64(1, "s")) == 0
    assert releases.due(times[5]) >= 6 and releases.due(times[-1]) == 12
    assert list(releases.batch(0, 2)[0]) == ["post_id", "text", "topic"]
    with pytest.raises(FeedrankError, match="needs 15 posts; the world holds back 12"):
        Releases.plan(held, days, 5, np.random.default_rng(0))


def test_fresh_report_counts_shares_per_group() -> None:
    releases = Releases(
        pd.DataFrame({"post_id": [100], "released_at": [pd.Timestamp("2021-12-28 10:00")]})
    )
    at = pd.Timestamp("2021-12-28 12:00")
    views = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "post_id": [100, 5, 6, 7, 100, 100, 8, 9],
            "timestamp": [at] * 8,
            "liked": [True, True, False, False, True, False, False, True],
        }
    )
    groups = pd.Series({1: "control", 2: "control", 3: "test", 4: "test"})
    result = fresh_report(views, releases, groups)
    control, test = result["groups"]["control"], result["groups"]["test"]
    assert (control["fresh_shown"], control["shown"], control["share_of_shown"]) == (1, 4, 0.25)
    assert (control["fresh_likes"], control["likes"], control["share_of_likes"]) == (1, 2, 0.5)
    assert (test["share_of_shown"], test["share_of_likes"]) == (0.5, 0.5)
    assert (test["fresh_ctr"], test["catalogue_ctr"]) == (0.5, 0.5)
    assert control["median_hours_to_first_show"] == 2.0
    assert result["differences"]["test"]["share_of_shown"]["difference"] == 0.25


@pytest.fixture(scope="module")
def simulation(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    repository = copy_repository(built_repository(tiny_world), root)
    out = root / "sim"
    arguments = ["--world", str(tiny_world), "--repository", str(repository), "--out", str(out)]
    arguments += ["--users", "200", "--days", str(DAYS), "--seed", "5"]
    assert main(["ab", "simulate", *arguments, "--new-posts-per-day", str(PER_DAY)]) == 0
    return out


def test_a_published_post_is_a_candidate_from_its_release_on(
    simulation: Path, tiny_world: Path
) -> None:
    posted = [
        json.loads(line)
        for path in sorted((simulation / "log").glob("posts-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    held = GroundTruth.held_back(tiny_world).set_index("post_id")
    assert len(posted) == PER_DAY * DAYS
    for post in posted:
        assert (post["text"], post["topic"]) == tuple(held.loc[post["post_id"], ["text", "topic"]])
    log = duckdb.sql(f"SELECT * FROM ({query(simulation / 'log')}) ORDER BY requested_time").df()
    releases = Releases.plan(
        held.reset_index(),
        np.array(sorted(log["requested_time"].dt.floor("D").unique()), "datetime64[D]"),
        PER_DAY,
        np.random.default_rng(np.random.SeedSequence(5).spawn(5)[4]),
    )
    assert sorted(releases.posts["post_id"]) == sorted(p["post_id"] for p in posted)
    # the candidates of every request: each version's catalogue, plus every post released by then
    released_by = np.array(
        [releases.due(t) for t in log["requested_time"].to_numpy("datetime64[us]")]
    )
    catalogue = log["candidates"] - released_by
    assert catalogue.groupby(log["model"]).nunique().eq(1).all()
    assert released_by.min() == 0 and released_by.max() == PER_DAY * DAYS
    release_time = releases.posts.set_index("post_id")["released_at"]
    shown = log.explode("post_ids").dropna(subset=["post_ids"])
    fresh = shown[shown["post_ids"].isin(release_time.index)]
    assert len(fresh) > 0
    assert (
        fresh["requested_time"].to_numpy()
        >= release_time.loc[fresh["post_ids"].astype(np.int64)].to_numpy()
    ).all()


def test_the_report_gives_fresh_posts_share_per_group(simulation: Path) -> None:
    fresh = json.loads((simulation / "report" / "fresh_posts.json").read_text())
    log = duckdb.sql(f"SELECT exp_group, post_ids FROM ({query(simulation / 'log')})").df()
    assert fresh["released"] == PER_DAY * DAYS
    assert set(fresh["groups"]) == {"control", "test"}
    posted = {
        json.loads(line)["post_id"]
        for path in (simulation / "log").glob("posts-*.jsonl")
        for line in path.read_text().splitlines()
    }
    for name, group in fresh["groups"].items():
        shown = np.concatenate(log.loc[log["exp_group"] == name, "post_ids"].to_list())
        assert group["shown"] == len(shown)
        assert group["fresh_shown"] == np.isin(shown, list(posted)).sum()
        assert group["share_of_shown"] == pytest.approx(group["fresh_shown"] / group["shown"])
        assert 0 <= group["fresh_likes"] <= group["likes"]
        assert 0 <= group["fresh_posts_shown"] <= min(fresh["released"], group["fresh_shown"])
        assert (group["fresh_posts_shown"] > 0) == (group["fresh_shown"] > 0)
    # whether a model shows a post without history is the model's: on this tiny world at least
    # one of the two does, so the counts above are not all zeros
    assert sum(group["fresh_shown"] for group in fresh["groups"].values()) > 0
    page = (simulation / "report" / "report.html").read_text()
    assert "fresh posts: 6 published during the experiment" in page
    assert page.index("fresh posts:") < page.index("</body>")
    assert fresh["oracle"]["requests"] == len(log)
    assert 0 < fresh["oracle"]["share_of_shown"] < 1
    difference = fresh["differences"]["test"]["share_of_shown"]
    assert difference["low"] <= difference["difference"] <= difference["high"]


def test_the_oracle_gives_a_post_everyone_loves_a_slot_from_its_release_on(
    tiny_world: Path,
) -> None:
    truth = GroundTruth.load(tiny_world)
    posts = pd.read_parquet(tiny_world / "ground_truth" / "posts.parquet")
    loved = posts.iloc[[0, 1]].assign(post_id=[9_001, 9_002], quality=[12.0, 12.0])
    released = [pd.Timestamp("2021-12-20 06:00"), pd.Timestamp("2021-12-29 06:00")]
    releases = Releases(loved.assign(released_at=released))
    requests = pd.DataFrame(
        {"user_id": truth.user_ids[:40], "timestamp": pd.Timestamp("2021-12-25 12:00")}
    )
    share = oracle_share(truth.with_posts(loved), truth.post_ids, releases, requests, slots=5)
    assert share["requests"] == 40
    assert share["share_of_shown"] == pytest.approx(1 / 5)  # the first, never the second
    assert 0.2 < share["share_of_expected_likes"] < 1
