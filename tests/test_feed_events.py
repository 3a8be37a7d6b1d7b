"""`POST /feed/events` against a real `feedrank serve`: posted likes are excluded from later feeds
(and only from feeds requested after them), survive a restart through the events log, and bad
batches are refused whole with every bad field named."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from feedrank.server.errors import FieldErrors
from feedrank.server.events import MAX_EVENTS, parse_events
from feedrank.server.live_likes import LiveLikes

from feed_serving import ServerProcess, built_repository, feed, first_user, last_moment, later, like

NEW_USER = 10**12


@pytest.fixture(scope="module")
def moment(tiny_world: Path) -> str:
    return last_moment(tiny_world)


@pytest.fixture(scope="module")
def user(tiny_world: Path) -> int:
    return first_user(tiny_world)


def test_posted_likes_leave_later_feeds_and_survive_a_restart(tiny_world, moment, user, tmp_path):
    repository, log = built_repository(tiny_world), tmp_path / "log"
    with (
        ServerProcess(tiny_world, repository, log) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as client,
    ):
        before = feed(client, user, later(moment, 60))
        liked = before[:2]
        response = client.post(
            "/feed/events",
            json={
                "events": [
                    {
                        "user_id": user,
                        "post_id": before[0],
                        "action": "view",
                        "timestamp": moment,
                        "target": 1,
                    },
                    *(like(user, post, later(moment, 10)) for post in liked),
                ]
            },
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 3, "likes": 2}
        after = feed(client, user, later(moment, 60))
        assert not set(liked) & set(after) and after[:8] == before[2:]
        # a feed asked for before the likes happened still shows them
        assert feed(client, user, later(moment, 5)) == before
        # a new user (fallback feed) learns likes the same way
        popular = feed(client, NEW_USER, later(moment, 60))
        assert (
            client.post("/feed/events", json=[like(NEW_USER, popular[0], moment)]).status_code
            == 200
        )
        assert popular[0] not in feed(client, NEW_USER, later(moment, 60))
    # restarted on the same log folder: the likes come back from the events log
    with (
        ServerProcess(tiny_world, repository, log) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as client,
    ):
        assert feed(client, user, later(moment, 60)) == after
        assert "3 likes replayed" in server.logs()
    logged = [
        json.loads(line)
        for path in sorted(log.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert [(e["user_id"], e["post_id"], e["action"]) for e in logged] == [
        (user, before[0], "view"),
        *((user, p, "like") for p in liked),
        (NEW_USER, popular[0], "like"),
    ]
    assert all("server_time" in e for e in logged)


def test_a_bad_batch_is_refused_whole_with_every_field_named(tiny_world, moment, user, tmp_path):
    with (
        ServerProcess(tiny_world, built_repository(tiny_world), tmp_path / "log") as server,
        httpx.Client(base_url=server.url, timeout=30.0) as client,
    ):
        shown = feed(client, user, later(moment, 60))
        response = client.post(
            "/feed/events",
            json=[
                like(user, shown[0], moment),  # fine, but its batch is refused
                {
                    "user_id": -1,
                    "post_id": 10**9,
                    "action": "share",
                    "timestamp": "yesterday",
                    "extra": 1,
                },
                {"post_id": shown[1], "action": "like"},
                "not an event",
            ],
        )
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "invalid feed events"
        fields = [f["field"] for f in body["fields"]]
        assert sorted(fields) == sorted(
            [
                "events[1].extra",
                "events[1].user_id",
                "events[1].post_id",
                "events[1].action",
                "events[1].timestamp",
                "events[2].user_id",
                "events[2].timestamp",
                "events[3]",
            ]
        )
        assert feed(client, user, later(moment, 60)) == shown  # nothing of it was applied
        for body, status in ((b"{", 422), (b"[]", 422), (b'{"events": 3}', 422)):
            response = client.post("/feed/events", content=body)
            assert response.status_code == status and response.json()["fields"], body
        too_many = [like(user, shown[0], moment)] * (MAX_EVENTS + 1)
        response = client.post("/feed/events", json=too_many)
        assert response.status_code == 422 and "at most" in response.text
        assert client.get("/feed/events").status_code == 405
        assert not any(p.read_text() for p in (tmp_path / "log").glob("events-*.jsonl"))


def test_parse_events_keeps_types_and_normalises_time():
    known = np.zeros(10, bool)
    known[[3, 7]] = True
    batch = parse_events(
        json.dumps(
            [
                {
                    "user_id": 5,
                    "post_id": 3,
                    "action": "view",
                    "timestamp": "2021-12-01 10:00:00",
                    "target": 0,
                },
                {
                    "user_id": 5,
                    "post_id": 7,
                    "action": "like",
                    "timestamp": "2021-12-01T12:00:05+02:00",
                },
            ]
        ).encode(),
        known,
    )
    assert batch.liked.tolist() == [False, True]
    assert batch.timestamp.tolist() == [
        np.datetime64("2021-12-01T10:00:00", "us").item(),
        np.datetime64("2021-12-01T10:00:05", "us").item(),
    ]
    assert batch.records[1]["timestamp"] == "2021-12-01T10:00:05"
    with pytest.raises(FieldErrors, match=r"events\[0\].target"):
        parse_events(
            b'[{"user_id": 1, "post_id": 3, "action": "like", '
            b'"timestamp": "2021-12-01", "target": 1}]',
            known,
        )
    with pytest.raises(FieldErrors, match=r"events\[0\].post_id: unknown post 4"):
        parse_events(
            b'[{"user_id": 1, "post_id": 4, "action": "like", "timestamp": "2021-12-01"}]', known
        )


def test_live_likes_answer_by_time():
    likes = LiveLikes(capacity=100)
    at = np.array(["2021-12-01T10:00", "2021-12-01T11:00", "2021-12-01T09:00"], "datetime64[us]")
    likes.add(np.array([1, 1, 2]), np.array([10, 11, 12]), at)
    likes.add(np.array([1]), np.array([13]), np.array(["2021-12-01T12:00"], "datetime64[us]"))
    assert likes.liked_before(1, np.datetime64("2021-12-01T11:30", "us")).tolist() == [10, 11]
    assert likes.liked_before(1, np.datetime64("2021-12-02", "us")).tolist() == [10, 11, 13]
    assert likes.liked_before(2, np.datetime64("2021-12-01T09:00", "us")).tolist() == []
    assert likes.liked_before(3, np.datetime64("2021-12-02", "us")).tolist() == []
    assert len(likes) == 4


def test_a_token_guards_posting_and_a_full_store_refuses_before_logging(
    tiny_world, moment, user, tmp_path
):
    log = tmp_path / "log"
    with (
        ServerProcess(
            tiny_world,
            built_repository(tiny_world),
            log,
            env={
                "FEEDRANK_SERVER__EVENTS_TOKEN": "ev-token",
                "FEEDRANK_SERVER__MAX_LIVE_LIKES": "3",
            },
        ) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as client,
    ):
        shown = feed(client, user, later(moment, 60))
        likes = [like(user, post, moment) for post in shown[:2]]
        refused = client.post("/feed/events", json=likes)
        assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
        auth = {"Authorization": "Bearer ev-token"}
        assert client.post("/feed/events", json=likes, headers=auth).status_code == 200
        full = client.post(
            "/feed/events", json=[like(user, p, moment) for p in shown[2:4]], headers=auth
        )
        assert full.status_code == 503 and "max_live_likes = 3" in full.json()["error"]
        assert not set(shown[:2]) & set(feed(client, user, later(moment, 60)))
    logged = [
        json.loads(line)
        for path in sorted(log.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert [e["post_id"] for e in logged] == shown[:2]


def test_plain_batches_and_checked_batches_parse_alike():
    known = np.ones(50, bool)
    rng = np.random.default_rng(0)
    events = [
        {
            "user_id": int(u),
            "post_id": int(p),
            "action": a,
            "timestamp": f"2021-12-0{d}T1{h}:0{m}:00" + (".250000" if m % 2 else ""),
        }
        for u, p, a, d, h, m in zip(
            rng.integers(0, 10**12, 300),
            rng.integers(0, 50, 300),
            rng.choice(["like", "view"], 300),
            rng.integers(1, 9, 300),
            rng.integers(0, 9, 300),
            rng.integers(0, 9, 300),
        )
    ]
    plain = parse_events(json.dumps(events).encode(), known)
    # one view with a target sends the whole batch through the per-event checks
    checked = parse_events(
        json.dumps([*events, {**events[0], "action": "view", "target": 0}]).encode(), known
    )
    for column in ("user_id", "post_id", "liked", "timestamp"):
        np.testing.assert_array_equal(getattr(plain, column), getattr(checked, column)[:-1])
    assert plain.records == checked.records[:-1]
