"""Evaluation on logged data for any world: windows derived from the feed's own time span,
sessions as requests, a refusal of unusable data, and build + evaluate on an imported world."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedrank.cli import main
from feedrank.errors import FeedrankError
from feedrank.export.hit_rate import Rate, logged_requests
from feedrank.export.windows import world_windows
from feedrank.features.exposure import Exposure
from feedrank.world.layout import WorldLayout


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")


def write_feed(world: Path, rows: list[tuple]) -> WorldLayout:
    """feed_data rows (timestamp, user_id, post_id, action, target) as one day file each."""
    layout = WorldLayout(world)
    layout.feed_dir.mkdir(parents=True)
    feed = pd.DataFrame(rows, columns=["timestamp", "user_id", "post_id", "action", "target"])
    for day, part in feed.groupby(feed["timestamp"].dt.date):
        part.to_parquet(layout.feed_dir / f"{day}.parquet", index=False)
    return layout


def uniform_views(start: str, hours: int, per_hour: int = 10) -> list[tuple]:
    first = datetime.fromisoformat(start)
    return [
        (first + timedelta(hours=h, seconds=3600 * i // per_hour), i, h % 7, "view", i % 2)
        for h in range(hours)
        for i in range(per_hour)
    ]


def test_a_five_day_log_is_cut_at_whole_hours(tmp_path):
    windows = world_windows(write_feed(tmp_path / "w", uniform_views("2022-03-01 00:00", 120)))
    assert windows.train_start == datetime(2022, 3, 1)
    assert windows.eval_end == datetime(2022, 3, 6)
    # the last ~15% of the views held out, the ~15% before them validating, whole hours
    assert windows.eval_start == datetime(2022, 3, 5, 5)
    assert windows.valid_start == datetime(2022, 3, 4, 11)
    assert all(t.minute == 0 for t in (windows.valid_start, windows.eval_start))


def test_a_seven_month_log_keeps_its_history_for_training(tmp_path):
    # 60 views an hour: the capped week holds 10,080, enough to measure on
    windows = world_windows(write_feed(tmp_path / "w", uniform_views("2022-01-01", 212 * 24, 60)))
    assert windows.eval_end - windows.eval_start == timedelta(days=7)  # capped
    assert windows.eval_start - windows.valid_start == timedelta(days=10)  # capped
    assert windows.valid_start.hour == 0 and windows.valid_start > datetime(2022, 7, 1)


def test_a_log_fading_at_its_end_holds_out_enough_views_to_measure(tmp_path):
    """Seven months of 30 views an hour: the last week holds 5,040 views, so the held-out and
    validation windows reach back to 10,000 views each, never past ~15% of the log."""
    windows = world_windows(write_feed(tmp_path / "w", uniform_views("2022-01-01", 212 * 24, 30)))
    assert windows.eval_end - windows.eval_start == timedelta(days=14)  # 10,080 views
    assert windows.eval_start - windows.valid_start == timedelta(days=14)
    assert all(t.hour == 0 for t in (windows.valid_start, windows.eval_start))
    sparse = world_windows(write_feed(tmp_path / "s", uniform_views("2022-01-01", 212 * 24, 1)))
    assert sparse.eval_end - sparse.eval_start == timedelta(days=32)  # its last ~15%


def test_a_log_too_short_to_split_is_refused(tmp_path):
    layout = write_feed(tmp_path / "w", uniform_views("2022-03-01 10:00", 1))
    with pytest.raises(FeedrankError, match="too few hours"):
        world_windows(layout)


def test_sessions_are_requests_and_a_hit_counts_likes_within_the_horizon(tmp_path):
    t = datetime(2022, 3, 1, 9)
    rows = [
        (t, 1, 10, "view", 1),
        (t + timedelta(seconds=20), 1, 10, "like", None),
        (t + timedelta(minutes=30), 1, 11, "view", 0),  # same session
        (t + timedelta(minutes=50), 1, 12, "view", 1),
        (t + timedelta(minutes=61), 1, 12, "like", None),  # after the horizon
        (t + timedelta(hours=3), 1, 13, "view", 0),  # a new session
        (t + timedelta(hours=1), 2, 14, "view", 0),
    ]
    layout = write_feed(tmp_path / "w", rows)
    requests = logged_requests(
        layout, t, t + timedelta(days=1), horizon=timedelta(hours=1), limit=10, seed=0
    )
    assert requests.total == 3
    assert list(
        zip(requests.user_ids.tolist(), requests.times.astype("datetime64[m]").astype(str).tolist())
    ) == [(1, "2022-03-01T09:00"), (2, "2022-03-01T10:00"), (1, "2022-03-01T12:00")]
    assert requests.liked.tolist() == [0 << 32 | 10]  # request 0 liked post 10 in time


def test_rates_have_wilson_and_paired_intervals():
    hits = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
    rate = Rate.wilson(hits)
    assert rate.mean == 0.3 and 0.10 < rate.low < 0.11 and 0.60 < rate.high < 0.61
    assert Rate.wilson(np.zeros(50, bool)).low == 0.0
    paired = Rate.paired(hits, np.zeros(10, bool))
    assert paired.mean == pytest.approx(0.3) and paired.low < 0.3 < paired.high


def test_exposure_ranks_by_preference_times_recent_views():
    p = np.array([0.2, 0.1, 0.1])
    shares = np.array([0.0, 5.0, 50.0])
    assert np.array_equal(Exposure().scores(p, shares), p)
    scores = Exposure("recent_view_share_1h", 1.0).scores(p, shares)
    assert np.argsort(-scores).tolist() == [2, 1, 0]
    assert scores[2] - scores[1] == pytest.approx(np.log(50.01 / 5.01))
    # at alpha 1, log P(like | shown) + log share: the ratio of P(shown and liked)
    assert scores[0] - scores[1] == pytest.approx(np.log(0.2 * 0.01 / (0.1 * 5.01)))


def test_a_version_chosen_on_the_logit_keeps_ranking_on_it():
    """Metadata written before the log scale names no scale: the logit it was chosen on."""
    old = Exposure.from_dict({"column": "recent_view_share_1h", "alpha": 1.0})
    assert old.scale == "logit"
    scores = old.scores(np.array([0.5, 0.2]), np.array([1.0, 1.0]))
    assert scores[0] - scores[1] == pytest.approx(np.log(1.0) - np.log(0.2 / 0.8))
    assert Exposure.from_dict(Exposure("recent_view_share_1h", 1.0).as_dict()).scale == "log"


def test_a_world_whose_training_window_has_only_likes_is_refused_clearly(
    tiny_world, tmp_path, capsys
):
    """Every view followed by a like (a click history, say): nothing to tell apart."""
    layout = WorldLayout(tiny_world)
    source = tmp_path / "source"
    source.mkdir()
    pd.read_parquet(layout.users).to_csv(source / "user_data.csv", index=False)
    pd.read_parquet(layout.posts).to_csv(source / "post_text_df.csv", index=False)
    feed = pd.read_parquet(layout.feed_dir)
    views = feed[feed["action"] == "view"].assign(target=1)
    likes = views.assign(
        action="like", target=None, timestamp=views["timestamp"] + pd.Timedelta(seconds=20)
    )
    pd.concat([views, likes]).sort_values("timestamp").to_csv(source / "feed_data.csv", index=False)
    assert main(["world", "import", "--source", str(source), "--out", str(tmp_path / "w")]) == 0
    assert (
        main(
            [
                "build",
                "--world",
                str(tmp_path / "w"),
                "--repository",
                str(tmp_path / "r"),
                "--iterations",
                "10",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "training window has only views followed by a like" in err
    assert "Traceback" not in err and not (tmp_path / "r" / "control").exists()


def test_build_and_evaluate_an_imported_world(tiny_world, tmp_path, capsys):
    """No ground truth: the logged metric against popularity and trending, no oracle, no
    simulated metric, no replay; the windows stated."""
    layout = WorldLayout(tiny_world)
    source = tmp_path / "source"
    (source / "feed_data").mkdir(parents=True)
    pd.read_parquet(layout.users).to_parquet(source / "user_data.parquet")
    pd.read_parquet(layout.posts).to_parquet(source / "post_text_df.parquet")
    pd.read_parquet(layout.feed_dir).to_parquet(source / "feed_data" / "feed.parquet")
    world, repository = tmp_path / "imported", tmp_path / "repository"
    assert main(["world", "import", "--source", str(source), "--out", str(world)]) == 0
    assert (
        main(
            ["build", "--world", str(world), "--repository", str(repository), "--iterations", "30"]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--world",
                str(world),
                "--repository",
                str(repository),
                "--requests",
                "300",
                "--horizon",
                "24",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "no offline A/B replay" in out and "oracle" not in out
    assert "a like within 24 h" in out and "Windows: training" in out
    saved = json.loads((repository / "test" / "1" / "evaluation.json").read_text())
    rows = {r["ranker"]: r for r in saved["rows"]}
    assert set(rows) == {"control", "test", "popularity", "trending", "random"}
    assert saved["requests"] == 300 and saved["horizon_hours"] == 24
    assert all(r["simulated_hit_rate"] is None for r in rows.values())
    # a day of likes after each session: the models find some of them, random hardly any
    assert rows["test"]["hit_rate"]["mean"] > rows["random"]["hit_rate"]["mean"]
