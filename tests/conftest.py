"""Shared session fixtures.

World section (owner: world helper): seeded generated worlds, made once per test session.
Other stages: add your shared fixtures in a clearly separated section below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_cluster import PostgresCluster

from feedrank.world.generate import generate_world

TINY = {"users": 600, "posts": 120, "views": 40_000, "seed": 7}
SMALL = {"users": 3000, "posts": 400, "views": 300_000, "seed": 7}  # the size


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world of 600 users, 120 posts, 40,000 views (about a second to make)."""
    world = tmp_path_factory.mktemp("worlds") / "tiny"
    generate_world(world, progress=False, **TINY)
    return world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's world: 3,000 users, 400 posts, 300,000 views, seed 7."""
    world = tmp_path_factory.mktemp("worlds") / "small"
    generate_world(world, progress=False, **SMALL)
    return world


# PostgreSQL section: one throwaway server for the session (benchmarks/postgres_cluster.py).


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.remove()
