"""Likes posted since the feature snapshot, so that later feeds exclude them.

Columnar, 24 bytes a like (user id, time, post id as int64), no Python object per like: a part
sorted by user, answered by binary search, and an unsorted tail that new likes are appended to
(O(batch)) and that a lookup scans whole with one vectorised comparison. When the tail passes
`TAIL_ROWS`, a worker thread merges it into the sorted part from immutable snapshots and the
event loop swaps the result in: no request waits for a merge. `server.max_live_likes` bounds the
memory: a batch that would pass it is refused before it is logged (`reserve`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from feedrank.errors import FeedrankError

TAIL_ROWS = 65_536
BYTES_PER_LIKE = 24


class LiveLikesFull(FeedrankError):
    """Taking a batch would pass `server.max_live_likes`."""


@dataclass(frozen=True)
class _Columns:
    user: np.ndarray  # int64
    time: np.ndarray  # int64 microseconds, naive UTC world time
    post: np.ndarray  # int64

    @staticmethod
    def of(user: np.ndarray, post: np.ndarray, time: np.ndarray) -> _Columns:
        return _Columns(
            np.asarray(user, np.int64),
            np.asarray(time, "datetime64[us]").astype(np.int64),
            np.asarray(post, np.int64),
        )

    def __len__(self) -> int:
        return len(self.user)

    def __add__(self, other: _Columns) -> _Columns:
        return _Columns(
            *(
                np.concatenate([a, b])
                for a, b in zip(
                    (self.user, self.time, self.post), (other.user, other.time, other.post)
                )
            )
        )

    def take(self, rows: np.ndarray | slice) -> _Columns:
        return _Columns(self.user[rows], self.time[rows], self.post[rows])


EMPTY = _Columns.of(np.empty(0), np.empty(0), np.empty(0, "datetime64[us]"))


def _sort(columns: _Columns) -> _Columns:
    return columns.take(np.argsort(columns.user, kind="stable"))


def _merge(ordered: _Columns, tail: _Columns) -> _Columns:
    """`ordered` with `tail` inserted, still sorted by user: O(len(ordered) + tail log tail)."""
    tail = _sort(tail)
    at = np.searchsorted(ordered.user, tail.user, side="right")
    return _Columns(
        np.insert(ordered.user, at, tail.user),
        np.insert(ordered.time, at, tail.time),
        np.insert(ordered.post, at, tail.post),
    )


class LiveLikes:
    """Used from the event loop's thread only; merges run on copies in a worker thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._sorted = EMPTY
        self._tail = EMPTY
        self._reserved = 0
        self._merge: asyncio.Task | None = None

    def __len__(self) -> int:
        return len(self._sorted) + len(self._tail)

    @property
    def bytes(self) -> int:
        return len(self) * BYTES_PER_LIKE

    def reserve(self, count: int) -> None:
        """Hold room for `count` likes about to be logged; raise LiveLikesFull if there is none.
        `add` takes the room back; `release` returns it when the batch was not accepted."""
        self._check_room(count)
        self._reserved += count

    def _check_room(self, count: int) -> None:
        if len(self) + self._reserved + count > self.capacity:
            raise LiveLikesFull(
                f"live likes are full: {len(self):,} held, {count:,} more would pass "
                f"server.max_live_likes = {self.capacity:,} ({BYTES_PER_LIKE} bytes a like); "
                "rebuild the features to fold posted likes into the snapshot, or raise the limit"
            )

    def release(self, count: int) -> None:
        self._reserved -= count

    def add(
        self, user_id: np.ndarray, post_id: np.ndarray, timestamp: np.ndarray, reserved: int = 0
    ) -> None:
        self._reserved -= reserved
        self._tail = self._tail + _Columns.of(user_id, post_id, timestamp)
        if len(self._tail) >= TAIL_ROWS and self._merge is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (tools, tests): merge here
                self._sorted, self._tail = _merge(self._sorted, self._tail), EMPTY
                return
            self._merge = loop.create_task(self._merge_tail())

    async def _merge_tail(self) -> None:
        ordered, tail = self._sorted, self._tail
        try:
            merged = await asyncio.get_running_loop().run_in_executor(None, _merge, ordered, tail)
            # likes added during the merge were appended after the snapshot: they stay
            self._sorted, self._tail = merged, self._tail.take(slice(len(tail), None))
        finally:
            self._merge = None

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        # numpy's stubs lack np.datetime64(<datetime64>, unit), which converts the unit
        moment = np.datetime64(at, "us").astype(np.int64)  # type: ignore[call-overload]
        ordered, tail = self._sorted, self._tail
        first = int(ordered.user.searchsorted(user_id, "left"))
        last = int(ordered.user.searchsorted(user_id, "right"))
        mine = tail.user == user_id
        posts = [ordered.post[first:last][ordered.time[first:last] < moment]]
        if mine.any():
            posts.append(tail.post[mine & (tail.time < moment)])
        return np.concatenate(posts) if len(posts) > 1 else posts[0]

    def replay(self, user_id: np.ndarray, post_id: np.ndarray, timestamp: np.ndarray) -> None:
        """Take the likes of the events log at start-up, all at once (one sort)."""
        self._check_room(len(user_id))
        replayed = _Columns.of(user_id, post_id, timestamp)
        self._sorted, self._tail = _sort(self._sorted + self._tail + replayed), EMPTY
