"""The CUPED covariate on a hand-made feed_data and exposure log whose answers are known: the cut
at the first request, the lookback, views only, the pooled mean for users without history; and
how the report takes a covariate without history or with users missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feedrank.ab.attribution import connect_frames
from feedrank.ab.covariate import PrePeriod, pre_period
from feedrank.ab.report import analyse
from feedrank.world import schema

START = pd.Timestamp("2021-12-20 10:00:00")  # the experiment's first request
DAY = pd.Timedelta(days=1)
SECOND = pd.Timedelta(seconds=1)

EXPOSURES = pd.DataFrame(
    {
        "request_id": ["r1", "r2", "r3", "r4", "r5"],
        "user_id": [1, 2, 3, 5, 1],
        "exp_group": ["control", "test", "test", "control", "control"],
        "requested_time": [START, START + 60 * SECOND, START + DAY, START + 2 * DAY, START + DAY],
        "post_ids": [[1]] * 5,
    }
)
FEED = [  # (user, action, target, time)
    (1, "view", 1, START - DAY),
    (1, "view", 0, START - 2 * DAY),
    (1, "view", 1, START - 3 * DAY),
    (1, "like", 0, START - 3 * DAY),  # a like row is not a view
    (1, "view", 1, START + 60 * SECOND),  # during the experiment
    (1, "view", 0, START - 30 * DAY),  # before the 28-day lookback
    (2, "view", 0, START - SECOND),
    (2, "view", 1, START - 27 * DAY),
    (2, "view", 1, START),  # at the start: not before it
    (3, "like", 0, START - DAY),  # only a like before: no views
    (3, "view", 1, START + DAY),
    (4, "view", 0, START - DAY),  # not in the experiment
    (5, "view", 1, START - 28 * DAY),  # the lookback's first moment: counted
    (5, "view", 0, START - 28 * DAY - SECOND),
]


@pytest.fixture
def feed(tmp_path: Path) -> list[Path]:
    rows = pd.DataFrame(FEED, columns=["user_id", "action", "target", "timestamp"]).assign(
        post_id=7
    )
    files = []
    for month, part in rows.groupby(rows["timestamp"].dt.month):  # two files, as a world has
        files.append(tmp_path / f"{month}.parquet")
        schema.write(part, schema.FEED, files[-1])
    return files


def _pre(feed: list[Path], **kwargs: int) -> pd.DataFrame:
    no_likes = pd.DataFrame({"user_id": [], "post_id": [], "timestamp": [], "action": []})
    con = connect_frames(EXPOSURES, no_likes)  # the covariate reads only `exposures`
    result = pre_period(con, feed, **kwargs)
    assert result.start == START
    return result


def test_covariate_known_answers(feed: list[Path]) -> None:
    pre = _pre(feed)
    users = pre.users
    assert users.index.tolist() == [1, 2, 3, 5]
    assert users["views"].tolist() == [3, 2, 0, 1]
    fill = (2 / 3 + 1 / 2 + 1) / 3  # the mean of the users with views
    assert users["like_rate"].tolist() == pytest.approx([2 / 3, 1 / 2, fill, 1.0])
    summary = pre.as_dict()
    assert summary.pop("fill_value_without_views") == pytest.approx(fill)
    assert summary == {
        "covariate": "pre-period like rate (liked views / views)",
        "start": "2021-12-20 10:00:00",
        "lookback_days": 28,
        "users": 4,
        "users_with_views": 3,
    }


def test_covariate_lookback(feed: list[Path]) -> None:
    users = _pre(feed, lookback_days=2).users
    assert users["views"].tolist() == [2, 1, 0, 0]  # user 1: 1 and 2 days before
    assert users["like_rate"].tolist() == pytest.approx([1 / 2, 0.0, 1 / 4, 1 / 4])


def test_covariate_without_any_history(feed: list[Path]) -> None:
    pre = _pre(feed, lookback_days=0)
    assert pre.users_with_views == 0 and pre.users["views"].sum() == 0
    assert pre.users["like_rate"].isna().all() and pre.as_dict()["fill_value_without_views"] is None


PER_USER = pd.DataFrame(
    {
        "exp_group": ["control", "control", "test", "test"],
        "user_id": [1, 5, 2, 3],
        "exposures": 2,
        "hits": [1, 0, 2, 1],
        "shown": 10,
        "liked_shown": [1, 0, 3, 1],
        "likes": [1, 0, 3, 1],
    }
)


def test_report_skips_cuped_without_history(feed: list[Path]) -> None:
    report = analyse(
        PER_USER, pd.DataFrame(), window_s=3600, shares=None, pre_period=_pre(feed, lookback_days=0)
    )
    assert report.pre_period is None and all(c.cuped is None for c in report.comparisons)
    assert any("CUPED not computed" in note for note in report.notes)
    assert (
        analyse(PER_USER, pd.DataFrame(), window_s=3600, shares=None, pre_period=_pre(feed))
        .comparison("test", "ctr")
        .cuped
        is not None
    )


def test_report_refuses_a_covariate_missing_users(feed: list[Path]) -> None:
    pre = _pre(feed)
    partial = PrePeriod(pre.users.drop(index=3), pre.start, pre.lookback_days)
    with pytest.raises(ValueError, match="misses users"):
        analyse(PER_USER, pd.DataFrame(), window_s=3600, shares=None, pre_period=partial)
