"""The report's join of exposures and likes, on a hand-made log whose answers are known, and the
`feedrank ab report` command on real files (JSONL log, Parquet events)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedrank.ab.attribution import attribute, connect_log, parse_window
from feedrank.ab.split import parse_split, router_shares
from feedrank.ab.stats import cuped
from feedrank.cli import main
from feedrank.errors import FeedrankError
from feedrank.world import schema

T0 = pd.Timestamp("2021-12-20 10:00:00")


def _exposure(request_id: str, user: int, group: str, minutes: int, posts: list[int]) -> dict:
    at = T0 + pd.Timedelta(minutes=minutes)
    return {
        "request_id": request_id,
        "server_time": "2026-11-29T04:00:00+00:00",
        "requested_time": at.isoformat(),
        "user_id": user,
        "exp_group": group,
        "model": group,
        "version": 1,
        "post_ids": posts,
        "fallback": False,
        "latency_ms": 1.0,
    }


EXPOSURES = [
    _exposure("a1", 1, "control", 0, [10, 11, 12, 13, 14, 15]),  # 15 is beyond the top 5
    _exposure("a2", 1, "control", 30, [10, 16, 17, 18, 19]),  # overlaps a1's window on 10
    _exposure("b1", 2, "test", 0, [20, 21, 22, 23, 24]),
    _exposure("b2", 2, "test", 120, [25, 26]),  # a short list
    _exposure("c1", 3, "test", 0, [30, 31, 32, 33, 34]),
    _exposure("d1", 5, "control", 0, [40, 41, 42, 43, 44]),
]
LIKES = [  # (user, post, minutes after T0)
    (1, 10, 40),  # within a1 (40 min) and a2 (10 min): one like event, two exposures hit
    (1, 15, 5),  # shown at rank 6: not counted
    (1, 16, 200),  # after a2's 1 h window
    (2, 20, -5),  # before the exposure
    (2, 21, 59),  # inside b1's window (59 min)
    (2, 25, 121),  # inside b2's window
    (2, 26, 121),
    (3, 99, 1),  # a post never shown
    (4, 30, 1),  # another user's like of a shown post
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    log, events = tmp_path / "log", tmp_path / "events"
    log.mkdir(), events.mkdir()
    lines = "".join(json.dumps(e) + "\n" for e in EXPOSURES)
    (log / "exposures-20261129T040000Z-0001.jsonl").write_text(lines)
    rows = pd.DataFrame(
        {
            "timestamp": [T0 + pd.Timedelta(minutes=m) for _, _, m in LIKES],
            "user_id": [u for u, _, _ in LIKES],
            "post_id": [p for _, p, _ in LIKES],
            "action": "like",
            "target": pd.array([None] * len(LIKES), "Int8"),
        }
    )
    schema.write(rows, schema.FEED, events / "2021-12-20.parquet")
    return log, events


def test_attribution_counts_known_answers(files: tuple[Path, Path]) -> None:
    log, events = files
    per_user, daily = attribute(connect_log([log], sorted(events.glob("*.parquet"))), 3600)
    got = per_user.set_index("user_id")[
        ["exp_group", "exposures", "hits", "shown", "liked_shown", "likes"]
    ]
    assert got.loc[1].tolist() == ["control", 2, 2, 10, 2, 1]
    assert got.loc[2].tolist() == ["test", 2, 2, 7, 3, 3]
    assert got.loc[3].tolist() == ["test", 1, 0, 5, 0, 0]
    assert got.loc[5].tolist() == ["control", 1, 0, 5, 0, 0]
    assert daily.set_index("exp_group")["exposures"].to_dict() == {"control": 3, "test": 3}


def test_one_log_folder_per_replica_reads_as_one(files: tuple[Path, Path], tmp_path) -> None:
    log, events = files
    likes = sorted(events.glob("*.parquet"))
    lines = next(log.glob("exposures-*.jsonl")).read_text().splitlines(keepends=True)
    replicas = [tmp_path / "replica-a", tmp_path / "replica-b"]
    for folder, part in zip(replicas, (lines[::2], lines[1::2])):
        folder.mkdir()
        (folder / "exposures-20261129T040000Z-0001.jsonl").write_text("".join(part))
    together, _ = attribute(connect_log(replicas, likes), 3600)
    alone, _ = attribute(connect_log([log], likes), 3600)
    pd.testing.assert_frame_equal(together, alone)
    with pytest.raises(FeedrankError, match="no exposure log files"):
        connect_log([*replicas, tmp_path / "events"], likes)


def test_window_is_honoured(files: tuple[Path, Path]) -> None:
    log, events = files
    per_user, _ = attribute(connect_log([log], sorted(events.glob("*.parquet"))), 30 * 60)
    got = per_user.set_index("user_id")
    # 30 min: a1 misses the like at 40 min, a2 keeps it; b1's like at 59 min drops out
    assert (got.loc[1, "hits"], got.loc[1, "likes"]) == (1, 1)
    assert (got.loc[2, "hits"], got.loc[2, "liked_shown"]) == (1, 2)


def test_report_command_writes_json_html_and_plots(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log, events = files
    out = tmp_path / "report"
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(log),
                "--events",
                str(events),
                "--out",
                str(out),
                "--split",
                "control=50,test=50",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert [g["name"] for g in report["groups"]] == ["control", "test"]
    assert report["srm"]["observed"] == {"control": 2, "test": 2}
    hit_rates = [g["metrics"]["hit_rate"]["mean"] for g in report["groups"]]
    assert hit_rates == [0.5, 0.5]  # users 1 and 5; users 2 and 3
    likes = report["comparisons"][1]
    assert likes["metric"] == "likes" and likes["welch"]["difference"] == 1.0  # 1.5 - 0.5
    assert likes["cuped"] is None and report["cuped_covariate"] is None  # no --world
    html = (out / "report.html").read_text()
    for png in ("metrics_by_group.png", "daily_trend.png", "split_check.png"):
        assert png in html and (out / png).stat().st_size > 1000
    assert "hit rate@5" in capsys.readouterr().out


PRE_VIEWS = [  # (user, days before T0, liked): like rates 1 (user 1), 1/2 (user 2), 0 (user 5)
    (1, 1, 1),
    (1, 3, 1),
    (2, 2, 0),
    (2, 5, 1),
    (5, 10, 0),
    (5, 40, 1),
]  # 40 days: too early


def test_report_command_writes_cuped(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--world with --events: likes still from the events, the covariate from the world."""
    log, events = files
    feed = tmp_path / "world" / "feed_data"
    feed.mkdir(parents=True)
    schema.write(
        pd.DataFrame(
            {
                "timestamp": [T0 - pd.Timedelta(days=d) for _, d, _ in PRE_VIEWS],
                "user_id": [u for u, _, _ in PRE_VIEWS],
                "post_id": 10,
                "action": "view",
                "target": [t for _, _, t in PRE_VIEWS],
            }
        ),
        schema.FEED,
        feed / "2021-11-20.parquet",
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(log),
                "--events",
                str(events),
                "--world",
                str(tmp_path / "world"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert "CUPED" in report["statistics"] and "decision statistic" in report["statistics"]
    assert report["cuped_covariate"] == {
        "covariate": "pre-period like rate (liked views / views)",
        "start": str(T0),
        "lookback_days": 28,
        "users": 4,
        "users_with_views": 3,
        "fill_value_without_views": 0.5,
    }
    likes = report["comparisons"][1]
    assert likes["welch"]["difference"] == 1.0  # the likes come from --events as before
    # users 1, 5 (control) and 2, 3 (test); user 3 has no history and gets the mean 1/2
    expected = cuped(
        np.array([1.0, 0.0]), np.array([3.0, 0.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5])
    )
    assert likes["cuped"]["theta"] == pytest.approx(expected.theta)
    assert likes["cuped"]["variance_reduction"] == pytest.approx(expected.variance_reduction)
    assert likes["cuped"]["welch"] == pytest.approx(expected.welch.as_dict())
    assert "CUPED" in (out / "report.html").read_text() and "CUPED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--window", "ten"], "--window"),
        (["--split", "control=50,test"], "--split"),
        (["--repository", "nowhere"], "router config not found"),
    ],
)
def test_report_command_bad_arguments(
    files: tuple[Path, Path],
    tmp_path: Path,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture,
) -> None:
    log, events = files
    code = main(
        [
            "ab",
            "report",
            "--log",
            str(log),
            "--events",
            str(events),
            "--out",
            str(tmp_path / "r"),
            *argv,
        ]
    )
    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_report_command_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "log").mkdir()
    assert main(["ab", "report", "--log", str(tmp_path / "log"), "--events", str(tmp_path)]) == 2
    assert "no feed events (Parquet files" in " ".join(capsys.readouterr().err.split())


def test_report_refuses_a_group_of_one_user(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log, events = files
    path = next(log.iterdir())
    path.write_text(
        "".join(
            line
            for line in path.read_text().splitlines(keepends=True)
            if '"user_id": 5' not in line
        )
    )
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(log),
                "--events",
                str(events),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "group 'control' has 1 user" in " ".join(capsys.readouterr().err.split())


def test_split_parsing_and_router_file(tmp_path: Path) -> None:
    assert parse_split("control=30,test=70") == {"control": 0.3, "test": 0.7}
    (tmp_path / "router.toml").write_text(
        'salt = "s"\n[[groups]]\nname = "control"\nbuckets = [0, 19]\nmodel = "m"\nversion = 1\n'
        '[[groups]]\nname = "test"\nbuckets = [20, 99]\nmodel = "m"\nversion = 2\n'
    )
    assert router_shares(tmp_path / "router.toml") == {"control": 0.2, "test": 0.8}
    assert parse_window("90") == 90 and parse_window("2d") == 172800
    with pytest.raises(FeedrankError):
        parse_window("0h")
