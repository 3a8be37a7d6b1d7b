"""Posted likes shared by the processes that serve the feed, each a real `feedrank serve`: two
processes on one log folder (as `--workers` runs them), and replicas sharing a real PostgreSQL
server: a like posted to one is excluded by the other within a second; a restarted or
disconnected replica misses nothing; with the database down, posting answers 503 and keeps
nothing while feeds are served."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from postgres_cluster import PostgresCluster

from feedrank.ab.server_process import ServerProcess as BareServerProcess
from feedrank.errors import FeedrankError

from feed_serving import (
    ServerProcess,
    built_repository,
    feed,
    first_user,
    last_moment,
    later,
    like,
)

PROPAGATION_S = 1.0  # what a replica may take to apply another's like


def events_logged(log: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in log.glob("events-*.jsonl"))


def post_like(server: ServerProcess, user: int, post: int, at: str) -> httpx.Response:
    return httpx.post(f"{server.url}/feed/events", json=[like(user, post, at)], timeout=30)


def replica(server: ServerProcess) -> str:
    return httpx.get(f"{server.url}/router").headers["x-feedrank-replica"]


def test_two_processes_on_one_log_folder_share_their_likes(tiny_world, tmp_path):
    repository, log = built_repository(tiny_world), tmp_path / "log"
    user, at = first_user(tiny_world), last_moment(tiny_world)
    then = later(at, 60)  # feeds a minute after the likes
    with (
        ServerProcess(tiny_world, repository, log) as a,
        ServerProcess(tiny_world, repository, log) as b,
    ):
        assert replica(a) != replica(b)
        with httpx.Client(base_url=b.url) as client:
            top = feed(client, user, then, 3)
            assert post_like(a, user, top[0], at).status_code == 200
            time.sleep(PROPAGATION_S)
            assert top[0] not in feed(client, user, then, 3)
            assert post_like(b, user, top[1], at).status_code == 200
        time.sleep(PROPAGATION_S)
        with httpx.Client(base_url=a.url) as client:
            assert not {top[0], top[1]} & set(feed(client, user, then, 3))


@pytest.fixture
def database(tmp_path) -> Iterator[PostgresCluster]:
    """A server of this test's own: the tests stop and start it."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.remove()


def replicas(world: Path, tmp_path: Path, url: str) -> list[ServerProcess]:
    env = {"FEEDRANK_SERVER__STATE_URL": url}
    return [
        ServerProcess(world, built_repository(world), tmp_path / f"log-{name}", env=env)
        for name in ("a", "b")
    ]


def test_replicas_share_likes_through_postgresql(tiny_world, tmp_path, database):
    a, b = replicas(tiny_world, tmp_path, database.dsn)
    user, at = first_user(tiny_world), last_moment(tiny_world)
    then = later(at, 60)  # feeds a minute after the likes
    try:
        with httpx.Client(base_url=b.url) as client:
            top = feed(client, user, then, 5)
            assert post_like(a, user, top[0], at).status_code == 200
            time.sleep(PROPAGATION_S)
            assert top[0] not in feed(client, user, then, 5)

        b.stop()  # a restarted replica loads what was posted meanwhile
        assert post_like(a, user, top[1], at).status_code == 200
        b.start()
        with httpx.Client(base_url=b.url) as client:
            assert not {top[0], top[1]} & set(feed(client, user, then, 5))

        # a replica cut from the database reconnects and catches up
        database.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name LIKE 'feedrank listener {replica(b)}%'"
        )
        assert post_like(a, user, top[2], at).status_code == 200
        time.sleep(PROPAGATION_S + 1.0)  # its reconnect waits half a second first
        with httpx.Client(base_url=b.url) as client:
            assert not {top[0], top[1], top[2]} & set(feed(client, user, then, 5))
        assert "reconnect" in b.logs() or "connection lost" in b.logs()
    finally:
        a.stop()
        b.stop()
    with psycopg.connect(database.dsn) as connection:
        rows = connection.execute("SELECT count(*) FROM feedrank_events").fetchone()
    assert rows == (3,)


def test_with_the_database_down_posting_is_refused_and_feeds_are_served(
    tiny_world, tmp_path, database
):
    a, b = replicas(tiny_world, tmp_path, database.dsn)
    user, at = first_user(tiny_world), last_moment(tiny_world)
    then = later(at, 60)  # feeds a minute after the likes
    try:
        database.stop()
        with httpx.Client(base_url=a.url) as client:
            top = feed(client, user, then, 5)
            refused = post_like(a, user, top[0], at)
            assert refused.status_code == 503
            assert "shared state unavailable" in refused.json()["error"]
            assert events_logged(a.log_dir) == 0  # nothing half-written
            assert feed(client, user, then, 5) == top  # the refused like is not applied
        database.start()
        assert post_like(a, user, top[0], at).status_code == 200
        time.sleep(PROPAGATION_S + 1.0)  # b's listener reconnects too
        with httpx.Client(base_url=b.url) as client:
            assert top[0] not in feed(client, user, then, 5)
    finally:
        a.stop()
        b.stop()


def test_an_unreachable_database_at_start_up_is_a_clear_error(tiny_world, tmp_path):
    server = BareServerProcess(
        tiny_world,
        built_repository(tiny_world),
        tmp_path / "log",
        env={"FEEDRANK_SERVER__STATE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    with pytest.raises(FeedrankError, match="server.state_url: PostgreSQL"):
        server.start()
