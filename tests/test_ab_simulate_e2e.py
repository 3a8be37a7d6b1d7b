"""`feedrank ab simulate` end to end: the real `feedrank serve` on 127.0.0.1, simulated users over
HTTP, likes drawn from the ground truth, the report; then a broken split on the same log."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from feedrank.ab.replay import candidates, run_loop
from feedrank.ab.simulate import Simulation, drop_users
from feedrank.ab.split import router_shares
from feedrank.cli import main
from feedrank.features.online import OnlineFeatures
from feedrank.server.exposure_log import query
from feedrank.world import schema
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.simulated_users import Traffic

from feed_serving import built_repository, copy_repository


@pytest.fixture(scope="module")
def simulation(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`evaluate` (with its offline replay) on a copy of the repository, then the simulation."""
    root = tmp_path_factory.mktemp("ab")
    repository = copy_repository(built_repository(tiny_world), root)
    assert (
        main(
            [
                "evaluate",
                "--world",
                str(tiny_world),
                "--repository",
                str(repository),
                "--requests",
                "100",
                "--replay-users",
                "200",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    out = root / "sim"
    assert (
        main(
            [
                "ab",
                "simulate",
                "--world",
                str(tiny_world),
                "--repository",
                str(repository),
                "--users",
                "200",
                "--days",
                "2",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_report_of_the_simulation(simulation: Path) -> None:
    report = json.loads((simulation / "report" / "report.json").read_text())
    assert [g["name"] for g in report["groups"]] == ["control", "test"]
    assert all(g["users"] > 50 and g["exposures"] > g["users"] for g in report["groups"])
    assert not report["srm"]["alarm"]
    assert {c["metric"] for c in report["comparisons"]} == {"hit_rate", "likes", "ctr"}
    # CUPED's covariate comes from the world's feed before the simulated days
    assert report["cuped_covariate"]["users_with_views"] > 100
    assert all(c["cuped"]["welch"]["p_value"] > 0 for c in report["comparisons"])
    assert (simulation / "report" / "report.html").exists()
    expected = json.loads((simulation / "report" / "expected.json").read_text())
    assert all(0 < g["mean"] < 1 for g in expected["expected_hit_rate"]["groups"].values())
    assert all(g["mean"] > 0 for g in expected["expected_likes"]["groups"].values())
    assert set(expected["expected_likes"]["differences"]) == {"test"}


def test_the_ab_is_set_against_the_offline_prediction(simulation: Path) -> None:
    saved = json.loads((simulation / "report" / "prediction.json").read_text())
    assert saved["source"].endswith("test/1/evaluation.json") and saved["replay"]["seed"] == 3
    assert [c["metric"] for c in saved["checks"]] == [
        "hit_rate",
        "likes",
        "ctr",
        "expected_hit_rate",
        "expected_likes",
    ]
    report = json.loads((simulation / "report" / "report.json").read_text())
    found = {c["metric"]: c["welch"] for c in report["comparisons"]}
    for check in saved["checks"][:3]:
        assert check["found"] == found[check["metric"]]
        assert check["agrees"] == (abs(check["gap_z"]) < 1.96)


def test_ab_report_with_a_repository_sets_a_log_against_its_prediction(
    simulation: Path, tmp_path: Path
) -> None:
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(simulation / "log"),
                "--events",
                str(simulation / "events"),
                "--repository",
                str(simulation.parent / "repository"),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "prediction.json").read_text())
    simulated = json.loads((simulation / "report" / "prediction.json").read_text())
    # a real log has no ground truth: the three logged metrics, as the simulation found them
    assert saved["checks"] == simulated["checks"][:3]


def test_log_answers_and_events_agree(simulation: Path) -> None:
    con = duckdb.connect()
    served = con.execute(
        f"SELECT exp_group, model, count(*) FROM ({query(simulation / 'log')}) "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert [(g, m) for g, m, _ in served] == [("control", "control"), ("test", "test")]
    logged = con.execute(
        f"SELECT user_id, requested_time AS timestamp, unnest(post_ids) AS "
        f"post_id FROM ({query(simulation / 'log')}) ORDER BY ALL"
    ).fetchnumpy()
    events = simulation / "events"
    views = con.execute(
        f"SELECT user_id, timestamp, post_id FROM read_parquet("
        f"'{events}/*.parquet') WHERE action = 'view' ORDER BY ALL"
    ).fetchnumpy()
    for column in ("user_id", "timestamp", "post_id"):
        np.testing.assert_array_equal(logged[column], views[column])
    assert all(pq.read_schema(p).equals(schema.FEED) for p in events.glob("*.parquet"))
    likes = con.execute(f"""SELECT count(*), count_if(v.timestamp IS NULL) FROM
        read_parquet('{events}/*.parquet') l LEFT JOIN read_parquet('{events}/*.parquet') v
        ON v.action = 'view' AND v.target = 1 AND v.user_id = l.user_id AND v.post_id = l.post_id
        AND l.timestamp > v.timestamp AND l.timestamp < v.timestamp + INTERVAL 3 MINUTE
        WHERE l.action = 'like'""").fetchone()
    assert likes[0] > 0 and likes[1] == 0  # every like follows a liked view


def test_the_loop_is_closed(simulation: Path) -> None:
    """Every drawn event reached the server, and the server never showed a user a post after
    they liked it (without the posted likes it would: 120 posts, ~2 requests a user a day)."""
    events = f"read_parquet('{simulation / 'events'}/*.parquet')"
    posted = f"read_json('{simulation / 'log'}/events-*.jsonl')"
    con = duckdb.connect()
    sent = con.execute(f"SELECT action, count(*) FROM {posted} GROUP BY 1 ORDER BY 1").fetchall()
    drawn = con.execute(f"SELECT action, count(*) FROM {events} GROUP BY 1 ORDER BY 1").fetchall()
    assert sent == drawn and dict(drawn)["like"] > 100
    ((again,),) = con.execute(f"""SELECT count(*) FROM {events} l JOIN {events} v
        ON l.action = 'like' AND v.action = 'view' AND v.user_id = l.user_id
        AND v.post_id = l.post_id AND v.timestamp > l.timestamp""").fetchall()
    assert again == 0


def test_the_report_reads_likes_from_the_servers_events_log_alike(
    simulation: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(simulation / "log"),
                "--events",
                str(simulation / "log"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    from_log = json.loads((out / "report.json").read_text())
    from_parquet = json.loads((simulation / "report" / "report.json").read_text())
    assert from_log["groups"] == from_parquet["groups"]


def test_broken_split_fires_the_alarm(
    simulation: Path, tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    for path in (simulation / "log").glob("*.jsonl"):
        (log / path.name).write_bytes(path.read_bytes())
    dropped = drop_users(log, "test", 0.5, np.random.default_rng(0))
    assert dropped > 20
    repository = built_repository(tiny_world)
    assert (
        main(
            [
                "ab",
                "report",
                "--log",
                str(log),
                "--events",
                str(simulation / "events"),
                "--repository",
                str(repository),
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["srm"]["alarm"] and report["srm"]["p_value"] < 0.001
    assert "SAMPLE RATIO MISMATCH" in capsys.readouterr().out


def test_aa_repository_routes_every_group_to_control(tiny_world: Path, tmp_path: Path) -> None:
    repository = built_repository(tiny_world)
    aa = Simulation(world=tiny_world, repository=repository, out=tmp_path)._aa_repository()
    assert router_shares(aa / "router.toml") == router_shares(repository / "router.toml")
    text = (aa / "router.toml").read_text()
    assert text.count('model = "control"') == 2 and 'model = "test"' not in text
    assert (aa / "test" / "config.pbtxt").exists()  # the other models stay reachable


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--drop-share", "1.5"], "--drop-share must be in [0, 1)"),
        (["--users", "1"], "--users must be >= 2"),
        (["--days", "500"], "fewer than --days 500"),
    ],
)
def test_simulate_bad_arguments(
    tiny_world: Path, tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    repository = built_repository(tiny_world)
    assert (
        main(
            [
                "ab",
                "simulate",
                "--world",
                str(tiny_world),
                "--repository",
                str(repository),
                "--out",
                str(tmp_path / "sim"),
                *argv,
            ]
        )
        == 2
    )
    assert message in " ".join(capsys.readouterr().err.split())


def test_simulate_without_router(
    tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            [
                "ab",
                "simulate",
                "--world",
                str(tiny_world),
                "--repository",
                str(tmp_path),
                "--out",
                str(tmp_path / "sim"),
            ]
        )
        == 2
    )
    assert "router config not found" in " ".join(capsys.readouterr().err.split())


def test_the_offline_replay_reproduces_each_groups_feeds(
    simulation: Path, tiny_world: Path
) -> None:
    """The replay (ab/replay.py) runs the simulation's traffic through each model in
    process: for every user, the run under their group's model must show what the server did
    (same requests, same draws, same exclusions), which is what lets `feedrank evaluate` predict
    the A/B."""
    repository = built_repository(tiny_world)
    feed = sorted(p.stem for p in (tiny_world / "feed_data").glob("*.parquet"))
    traffic = Traffic.plan(
        GroundTruth.load(tiny_world).user_ids, 200, np.array(feed[-2:], "datetime64[D]"), 3
    )
    online = OnlineFeatures.load(tiny_world)
    served = duckdb.sql(
        f"SELECT user_id, requested_time, exp_group, post_ids FROM "
        f"({query(simulation / 'log')}) ORDER BY requested_time, user_id"
    ).df()
    assert len(served) == len(traffic.requests)
    for group in ("control", "test"):
        ranked = candidates(online, repository / group / "1", traffic.requests, 1, False, group)
        replayed = run_loop(GroundTruth.load(tiny_world), traffic, ranked)
        replayed["requested_time"] = traffic.requests["requested_time"].to_numpy()
        mine = served[served["exp_group"] == group]
        theirs = replayed.merge(mine, on=["user_id", "requested_time"])
        assert len(theirs) == len(mine) > 100
        same = [
            list(a) == list(b) for a, b in zip(theirs["shown"], theirs["post_ids"], strict=True)
        ]
        assert np.mean(same) == 1.0, f"{group}: {np.mean(same):.3f} of feeds identical"
