"""Live likes against brute force: lookups by user and time across the sorted part, the tail and
merges (in a worker thread under an event loop, in place without one); the memory bound."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from feedrank.server import live_likes
from feedrank.server.live_likes import LiveLikes, LiveLikesFull

START = np.datetime64("2021-12-01T00:00", "us")


def batches(seed: int, count: int, size: int) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, 500, size),
            rng.integers(0, 10_000, size),
            START + rng.integers(0, 86_400, size).astype("timedelta64[s]"),
        )
        for _ in range(count)
    ]


def brute(added: list[tuple[np.ndarray, ...]], user: int, at: np.datetime64) -> list[int]:
    return sorted(
        int(p)
        for users, posts, times in added
        for u, p, t in zip(users, posts, times)
        if u == user and t < at
    )


def check(likes: LiveLikes, added: list, rng: np.random.Generator) -> None:
    for user in rng.integers(0, 500, 40):
        at = START + np.timedelta64(int(rng.integers(0, 86_400)), "s")
        assert sorted(likes.liked_before(int(user), at).tolist()) == brute(added, user, at)


def test_lookups_match_brute_force_across_merges_without_a_loop(monkeypatch):
    monkeypatch.setattr(live_likes, "TAIL_ROWS", 300)
    likes, added, rng = LiveLikes(capacity=10**6), [], np.random.default_rng(0)
    for batch in batches(1, 12, 70):
        likes.add(*batch)
        added.append(batch)
        check(likes, added, rng)
    assert len(likes) == 12 * 70 and len(likes._tail) < 300 < len(likes._sorted)


def test_merges_in_a_worker_keep_likes_added_meanwhile(monkeypatch):
    monkeypatch.setattr(live_likes, "TAIL_ROWS", 200)
    likes, added, rng = LiveLikes(capacity=10**6), [], np.random.default_rng(1)

    async def run() -> None:
        for batch in batches(2, 20, 60):
            likes.add(*batch)  # may start a merge; the next add lands during it
            added.append(batch)
            check(likes, added, rng)
            await asyncio.sleep(0)
        while likes._merge is not None:
            await asyncio.sleep(0.01)

    asyncio.run(run())
    check(likes, added, rng)
    assert len(likes) == 20 * 60 and len(likes._sorted) > 0


def test_replay_then_adds():
    likes, rng = LiveLikes(capacity=10**6), np.random.default_rng(3)
    first, *rest = batches(4, 4, 500)
    likes.replay(*first)
    for batch in rest:
        likes.add(*batch)
    check(likes, [first, *rest], rng)


def test_the_memory_bound_refuses_before_anything_is_taken():
    likes = LiveLikes(capacity=100)
    users, posts, times = batches(5, 1, 60)[0]
    likes.reserve(60)
    likes.add(users, posts, times, reserved=60)
    with pytest.raises(LiveLikesFull, match="max_live_likes = 100"):
        likes.reserve(41)
    likes.reserve(40)  # held for a batch being logged...
    with pytest.raises(LiveLikesFull):
        likes.reserve(1)  # ...so none is left for another
    likes.release(40)  # that batch was not accepted
    likes.reserve(40)
    assert len(likes) == 60 and likes.bytes == 60 * live_likes.BYTES_PER_LIKE
    with pytest.raises(LiveLikesFull):
        LiveLikes(capacity=10).replay(users, posts, times)
