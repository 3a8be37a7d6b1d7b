"""A seeded synthetic ranking problem shaped like feedrank's: request columns (user, time; a mix
of small categorical codes and rates), post columns (continuous text features and a topic code)
and pair columns (user × post-group rates), with a real CatBoost model trained on it.

Used by the fast-path tests and the ranking-kernel benchmark, so that both exercise real
CatBoost models of the size the server runs without needing a generated world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from catboost import CatBoostClassifier

from feedrank.server.fastpath_graph import Partition

REQUEST_CODES = (2, 60, 10, 2, 2, 24, 7)  # gender, age, country, os, source, hour, weekday
REQUEST_RATES, POST_COLUMNS, PAIR_COLUMNS = 5, 24, 8


@dataclass
class RankingProblem:
    model: CatBoostClassifier
    partition: Partition
    post_matrix: np.ndarray  # float32 [N, F], request and pair columns zero
    post_group: np.ndarray  # int64 [N]
    n_groups: int
    rng: np.random.Generator

    def request(self) -> tuple[np.ndarray, np.ndarray]:
        """A random request: (request row, pair values per post group)."""
        return _request_values(self.rng), _pair_values(self.rng, self.n_groups)

    def dense(self) -> np.ndarray:
        """Random dense values of a request: float32 [N, dense columns] (user × post)."""
        return _dense_values(self.rng, len(self.post_matrix), len(self.partition.columns("dense")))

    def matrix(
        self,
        request_row: np.ndarray,
        pair_values: np.ndarray,
        dense_values: np.ndarray | None = None,
    ) -> np.ndarray:
        """The full model-input matrix the plain model scores for that request."""
        x = self.post_matrix.copy()
        x[:, self.partition.columns("request")] = request_row
        x[:, self.partition.columns("pair")] = pair_values[self.post_group]
        if dense_values is not None:
            x[:, self.partition.columns("dense")] = dense_values
        return x


def _request_values(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    size = () if n is None else (n,)
    codes = [rng.integers(0, k, size) for k in REQUEST_CODES]
    rates = [rng.beta(2, 20, size) for _ in range(REQUEST_RATES)]
    return np.stack(codes + rates, axis=-1).astype(np.float32)


def _pair_values(rng: np.random.Generator, n_groups: int, n: int | None = None) -> np.ndarray:
    shape = (n_groups, PAIR_COLUMNS) if n is None else (n, PAIR_COLUMNS)
    return rng.beta(2, 15, shape).astype(np.float32)


def _dense_values(rng: np.random.Generator, n: int, columns: int) -> np.ndarray:
    """A similarity in [-1, 1] and a share of recent activity, per (request, post)."""
    draws = [lambda: rng.uniform(-1, 1, n), lambda: rng.exponential(1.0, n)]
    values = [draws[i]() if i < len(draws) else rng.normal(size=n) for i in range(columns)]
    return np.stack(values, axis=-1).astype(np.float32) if columns else np.zeros((n, 0), np.float32)


def _posts(rng: np.random.Generator, n_posts: int, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    group = rng.integers(0, n_groups, n_posts)
    text = rng.normal(size=(n_posts, POST_COLUMNS - 1)) + 0.5 * group[:, None] % 3
    return np.column_stack([group, text]).astype(np.float32), group.astype(np.int64)


def synthetic_problem(
    *,
    n_posts: int = 7023,
    n_groups: int = 16,
    iterations: int = 1000,
    depth: int = 6,
    train_rows: int = 40_000,
    seed: int = 0,
    threads: int = 2,
    dense: int = 0,
) -> RankingProblem:
    """`dense`: how many per (request, post) columns (affinity, recent activity) to add."""
    rng = np.random.default_rng(seed)
    n_request = len(REQUEST_CODES) + REQUEST_RATES
    kinds = (
        ["request"] * n_request
        + ["post"] * POST_COLUMNS
        + ["pair"] * PAIR_COLUMNS
        + ["dense"] * dense
    )
    posts, group = _posts(rng, n_posts, n_groups)
    rows = rng.integers(0, n_posts, train_rows)
    x = np.column_stack(
        [
            _request_values(rng, train_rows),
            posts[rows],
            _pair_values(rng, n_groups, train_rows),
            _dense_values(rng, train_rows, dense),
        ]
    )
    end = n_request + POST_COLUMNS + PAIR_COLUMNS
    r, p, q, d = (
        x[:, :n_request],
        x[:, n_request : n_request + POST_COLUMNS],
        x[:, end - PAIR_COLUMNS : end],
        x[:, end:],
    )
    logit = (
        3 * r[:, 7]
        - 0.03 * np.abs(r[:, 1] - 30)
        + 0.5 * (r[:, 0] == p[:, 0] % 2)
        + p[:, 1:6] @ rng.normal(size=5) * 0.4
        + np.sin(r[:, 5] / 4 + p[:, 6])
        + 8 * q[:, 0] * (1 + p[:, 7])
        + 4 * q[:, 1] * r[:, 8] * 10
        - 2
    )
    if dense:
        logit += 1.5 * d[:, 0] * (1 + (p[:, 1] > 0)) + (np.log1p(d[:, 1]) if dense > 1 else 0)
    y = (rng.random(train_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    model = CatBoostClassifier(
        iterations=iterations,
        depth=depth,
        random_seed=seed,
        thread_count=threads,
        verbose=False,
        allow_writing_files=False,
    )
    model.fit(x.astype(np.float32), y)
    matrix = np.zeros((n_posts, len(kinds)), np.float32)
    matrix[:, n_request : n_request + POST_COLUMNS] = posts
    return RankingProblem(
        model, Partition(tuple(kinds)), matrix, group, n_groups, np.random.default_rng(seed + 1)
    )
