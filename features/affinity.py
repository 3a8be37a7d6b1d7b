"""A user's taste in a text space as known before a moment, and how close each post is to it.

Every post is a unit vector (for the test model its MiniLM embedding reduced by PCA, for control
its TF-IDF reduced by LSA; the `affinity_*` columns of the post features). A user's taste at t is
the sum of the vectors of the posts they liked before t, and of the last `RECENT` of them; a
post's affinity is its cosine with each (0 for a user without likes). The sums are running sums
over the user's own likes, oldest first, computed when asked: the same arithmetic for one request
online and for every row of a user offline, and no table of sums as large as the world's likes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from feedrank.features.history import History, take_by_id

PREFIX = "affinity_"
RECENT = 10
COLUMNS = ("affinity_liked", "affinity_recent")
CHUNK = 262_144


def vector_columns(posts: pl.DataFrame) -> list[str]:
    return [c for c in posts.columns if c.startswith(PREFIX)]


class Affinity:
    def __init__(self, history: History, post_ids: np.ndarray, vectors: np.ndarray) -> None:
        self.history = history
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors, np.float64), where=norms > 0)
        self._row = np.full(int(post_ids.max(initial=0)) + 1, -1, np.int64)
        self._row[post_ids] = np.arange(len(post_ids))
        self.unit = np.vstack([unit, np.zeros((1, unit.shape[1]))])  # row -1: no vector
        self.likes = history.user_index("likes")

    @classmethod
    def of_posts(cls, history: History, posts: pl.DataFrame) -> Affinity | None:
        columns = vector_columns(posts)
        if not columns:
            return None
        return cls(
            history,
            posts["post_id"].to_numpy().astype(np.int64),
            posts.select(columns).to_numpy().astype(np.float64),
        )

    def rows(self, post_ids: np.ndarray) -> np.ndarray:
        """Each post's row of `unit`, -1 (a zero vector) for a post without a vector."""
        return take_by_id(self._row, post_ids)

    def tastes(self, users: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit taste vectors (all likes, the last RECENT) of each (user, time): [n, d] each."""
        lo, hi = self.likes.bounds(users, self.history.to_ms(times))
        liked, recent = (
            np.zeros((users.size, self.unit.shape[1])),
            np.zeros((users.size, self.unit.shape[1])),
        )
        for rows in _by_user(users):
            first = int(lo[rows[0]])  # the user's first like, whatever the time
            sums = self._running_sums(first, int(hi[rows].max()))
            count = hi[rows] - first
            liked[rows] = sums[count]
            recent[rows] = sums[count] - sums[np.maximum(count - RECENT, 0)]
        return _unit(liked), _unit(recent)

    def _running_sums(self, first: int, end: int) -> np.ndarray:
        """Sums of the unit vectors of likes first..k-1 of the index, for k = first..end."""
        sums = np.zeros((end - first + 1, self.unit.shape[1]))
        np.cumsum(self.unit[self.rows(self.likes.payloads()[first:end])], axis=0, out=sums[1:])
        return sums

    def block(
        self, users: np.ndarray, posts: np.ndarray, times: np.ndarray
    ) -> dict[str, np.ndarray]:
        """COLUMNS for parallel (user, post, time) rows (training)."""
        out = {name: np.zeros(len(users)) for name in COLUMNS}
        for start in range(0, len(users), CHUNK):
            part = slice(start, start + CHUNK)
            vectors = self.unit[self.rows(posts[part])]
            for name, taste in zip(COLUMNS, self.tastes(users[part], times[part])):
                out[name][part] = np.einsum("ij,ij->i", taste, vectors)
        return out

    def candidates(self, post_ids: np.ndarray) -> np.ndarray:
        """The candidate posts' unit vectors for `request_block` (a catalogue's: gathered once)."""
        return self.unit[self.rows(post_ids)]

    def request_block(
        self, user: int, at: np.datetime64, candidates: np.ndarray
    ) -> dict[str, np.ndarray]:
        """COLUMNS for one request over the candidates (`candidates(post_ids)`)."""
        tastes = self.tastes(np.array([user], np.int64), np.array([at]))
        return {name: candidates @ taste[0] for name, taste in zip(COLUMNS, tastes)}


def _by_user(users: np.ndarray) -> list[np.ndarray]:
    """The positions of each user's rows (a request's one row without sorting anything)."""
    if users.size == 1:
        return [np.zeros(1, np.int64)]
    order = np.argsort(users, kind="stable")
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    return np.split(order, starts[1:])


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
