"""Helpers for end-to-end server tests: a small built repository and a real `feedrank serve`
subprocess on 127.0.0.1 (uvicorn, as in production) that can be stopped or killed with -9."""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import numpy as np

from feedrank.ab.server_process import ServerProcess as _ServerProcess
from feedrank.export.build import Builder
from feedrank.export.training import TrainParams
from feedrank.world.layout import WorldLayout

# few shallow trees: the tests check serving, not model quality, and must build in seconds
TEST_TRAINING = TrainParams(iterations=40, depth=4, learning_rate=None, seed=42, threads=1)


@functools.cache
def built_repository(world: Path) -> Path:
    """Build control and test v1 of `world` beside it, once per test session."""
    repository = world.parent / f"{world.name}-repository"
    Builder(world, repository, TEST_TRAINING, progress=False).run()
    return repository


def copy_repository(repository: Path, into: Path) -> Path:
    """A private copy whose router.toml a test may edit."""
    return Path(shutil.copytree(repository, into / "repository"))


class ServerProcess(_ServerProcess):
    """Started at once (tests stop or kill it), re-reading the router file every 0.2 s."""

    def __init__(
        self,
        world: Path,
        repository: Path,
        log_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            world,
            repository,
            log_dir,
            None,
            *extra,
            env={"FEEDRANK_SERVER__POLL_INTERVAL_S": "0.2", **(env or {})},
        )
        self.start()


def last_moment(world: Path) -> str:
    """The world's last feed time, to the second."""
    ((last,),) = duckdb.sql(
        f"SELECT max(timestamp) FROM read_parquet('{WorldLayout(world).feed_glob}')"
    ).fetchall()
    return last.replace(microsecond=0).isoformat()


def first_user(world: Path) -> int:
    ((user_id,),) = duckdb.sql(
        f"SELECT min(user_id) FROM read_parquet('{WorldLayout(world).users}')"
    ).fetchall()
    return int(user_id)


def feed(client: httpx.Client, user: int, at: str, limit: int = 10) -> list[int]:
    """The post ids of a feed that must be answered."""
    response = client.get("/post/recommendations/", params={"id": user, "time": at, "limit": limit})
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["recommendations"]]


def like(user: int, post: int, at: str) -> dict:
    return {"user_id": user, "post_id": post, "action": "like", "timestamp": at}


def later(at: str, seconds: int) -> str:
    return str(np.datetime64(at, "s") + np.timedelta64(seconds, "s"))


def answers(url: str, timeout_s: float, alive: Callable[[], object] = lambda: None) -> bool:
    """Whether GET `url` answers 200 within `timeout_s` (polled; `alive()` may fail the wait
    early, e.g. when the server's process has exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def exposure_records(log: Path) -> list[dict]:
    """Every record of a log folder's exposure files, file by file, line by line."""
    return [
        json.loads(line)
        for path in sorted(log.glob("exposures-*.jsonl"))
        for line in path.read_text().splitlines()
    ]
