"""The dynamic batcher on a real thread pool: answers go back to their own requests, batches form
only while the scoring threads are busy, and batching off means one backend call per request."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from feedrank.features.ranking_request import Layout, RankingRequest, Snapshot
from feedrank.server.backends.base import Backend
from feedrank.server.batching import Batcher, Job

POSTS = Snapshot(
    ("posts",),
    np.array([[0, post] for post in range(3)], dtype=np.float32),
    Layout(("request", "post"), np.zeros(3, np.int64), 1),
)


class RowsOfUser:
    """Request inputs whose matrix encodes the user: 3 candidate rows [user, post]."""

    def request(self, user_id: int, at: np.datetime64) -> RankingRequest:
        return RankingRequest(POSTS, np.array([user_id, 0], dtype=np.float32))


class SlowSum:
    """A backend whose score is user * 10 + post, slow enough for requests to pile up; it ranks
    the way every plain backend does (`Backend.rank`: the matrices stacked, one call)."""

    rank = Backend.rank

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls, self.lock = seconds, [], threading.Lock()

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        with self.lock:
            self.calls.append(len(features) // 3)
        return features[:, 0].astype(np.float64) * 10 + features[:, 1]


async def score_all(batcher: Batcher, backend: SlowSum, users: range) -> list:
    at = np.datetime64("2021-12-01T00:00", "us")
    return await asyncio.gather(*(batcher.score(backend, Job(RowsOfUser(), u, at)) for u in users))


@pytest.mark.parametrize("enabled", [True, False])
def test_each_request_gets_its_own_scores(enabled):
    backend = SlowSum(0.005)
    with ThreadPoolExecutor(2) as pool:
        batcher = Batcher(pool, enabled=enabled, max_requests=4, max_delay_us=200, workers=2)
        results = asyncio.run(score_all(batcher, backend, range(40)))
    for user_id, scored in enumerate(results):
        assert scored.scores.tolist() == [user_id * 10.0, user_id * 10 + 1.0, user_id * 10 + 2.0]
    assert sum(backend.calls) == 40
    if enabled:
        assert max(backend.calls) == 4 and len(backend.calls) < 40
        assert {s.batch_size for s in results} >= {4}
    else:
        assert backend.calls == [1] * 40 and {s.batch_size for s in results} == {1}


def test_an_idle_server_does_not_batch():
    backend = SlowSum(0.0)
    with ThreadPoolExecutor(2) as pool:
        batcher = Batcher(pool, enabled=True, max_requests=8, max_delay_us=0, workers=2)

        async def one_at_a_time() -> None:
            for user_id in range(10):
                await score_all(batcher, backend, range(user_id, user_id + 1))

        asyncio.run(one_at_a_time())
    assert backend.calls == [1] * 10


def test_a_backend_error_reaches_every_request_of_the_batch():
    class Broken(SlowSum):
        def like_probability(self, features: np.ndarray) -> np.ndarray:
            raise RuntimeError("model exploded")

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool, enabled=True, max_requests=4, max_delay_us=1000, workers=1)

        broken = Broken(0)

        async def run() -> list:
            at = np.datetime64("2021-12-01T00:00", "us")
            return await asyncio.gather(
                *(batcher.score(broken, Job(RowsOfUser(), u, at)) for u in range(3)),
                return_exceptions=True,
            )

        errors = asyncio.run(run())
    assert all(isinstance(e, RuntimeError) for e in errors)


class Preparing(SlowSum):
    """Records each `prepare` and each scoring call, in order."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.order: list[str] = []

    def prepare(self, snapshot: Snapshot) -> None:
        self.order.append(f"prepare {snapshot.key}")

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        self.order.append("score")
        return super().like_probability(features)


@pytest.mark.parametrize("prepare", [True, False])
def test_a_waiting_server_prepares_each_requests_ranking_before_scoring_it(prepare):
    backend = Preparing()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(
            pool, enabled=True, max_requests=4, max_delay_us=0, workers=1, prepare=prepare
        )
        asyncio.run(score_all(batcher, backend, range(3)))
    scored = backend.order.count("score")
    assert scored >= 1
    if prepare:  # every request's snapshot made ready before its batch is scored
        assert backend.order.count("prepare ('posts',)") == 3
        assert backend.order.index("prepare ('posts',)") < backend.order.index("score")
    else:
        assert backend.order == ["score"] * scored
