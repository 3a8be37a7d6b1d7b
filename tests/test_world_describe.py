"""`feedrank world describe`: the summary agrees with the tables it summarises."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from feedrank.cli import main
from feedrank.world.describe import summarize
from feedrank.world.layout import WorldLayout


def test_summary_matches_independent_counts(tiny_world: Path) -> None:
    layout = WorldLayout(tiny_world)
    summary = summarize(layout)
    db = duckdb.connect()
    views, likes, rate = db.execute(
        f"""SELECT count(*) FILTER (action = 'view'), count(*) FILTER (action = 'like'),
                   sum(target) FILTER (action = 'view') / count(*) FILTER (action = 'view')
            FROM '{layout.feed_glob}'"""
    ).fetchone()
    assert summary["rows"] == {
        "user_data": 600,
        "post_text_df": 120,
        "feed_data": views + likes,
        "views": views,
        "likes": likes,
    }
    assert summary["like_rate"] == pytest.approx(rate)
    assert summary["first"].startswith("2021-10-01") and summary["last"].startswith("2021-12-29")
    assert [m for m, _ in summary["like_rate_by_month"]] == ["2021-10", "2021-11", "2021-12"]
    assert summary["topics"][0][0] == "movie" and summary["countries"][0][0] == "Russia"
    assert summary["users_with_views"] == 600
    assert 0 < summary["users_with_likes"] <= 600


def test_cli_prints_the_tables(tiny_world: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["world", "describe", str(tiny_world)]) == 0
    out = capsys.readouterr().out
    summary = summarize(WorldLayout(tiny_world))
    for text in (
        "like rate per view",
        f"{summary['like_rate']:.4f}",
        "topics",
        "top countries",
        "users with likes",
        f"{summary['rows']['feed_data']:,}",
        "Russia",
        "movie",
    ):
        assert text in out


def test_describe_of_a_non_world_is_a_clear_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    assert main(["world", "describe", str(tmp_path)]) == 2
    assert "is not a world" in capsys.readouterr().err
