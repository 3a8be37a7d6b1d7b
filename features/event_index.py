"""Events of one action keyed by user or post, answering "how many before time t" in one search.

An index is one sorted int64 array of composite keys `key << bits | t`, where `t` is the event's
time in milliseconds since the history's epoch, with an optional parallel payload (the liked
post of each like). The events of a key strictly before `t` are the slice between two binary
searches, so one vectorised `np.searchsorted` answers millions of training rows offline and a
handful of keys per request online, with the same code. Eight bytes an event (plus the payload)
and no Python object per event: the arrays are stored as they are and mapped from disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BITS = 62  # key and time bits together, so that composites stay positive int64
SORTED_SEARCH = 65_536  # from this many values a search sorts them first


def check_fits(max_key: int, bits: int) -> None:
    if max_key.bit_length() + bits > MAX_BITS:
        raise ValueError(f"{max_key} keys do not fit beside {bits} time bits")


@dataclass(frozen=True, eq=False)
class EventIndex:
    composite: np.ndarray  # sorted int64: key << bits | t_ms
    bits: int
    payload: np.ndarray | None = None  # parallel to `composite`

    @classmethod
    def build(
        cls, keys: np.ndarray, t_ms: np.ndarray, bits: int, payload: np.ndarray | None = None
    ) -> EventIndex:
        """From events in any order (sorted here, ties in their given order)."""
        if keys.size:
            check_fits(int(keys.max()), bits)
        composite = (keys.astype(np.int64) << bits) | t_ms
        order = np.argsort(composite, kind="stable")
        return cls(composite[order], bits, None if payload is None else payload[order])

    @property
    def time_mask(self) -> int:
        return (1 << self.bits) - 1

    def keys(self) -> np.ndarray:
        return self.composite >> self.bits

    def times(self) -> np.ndarray:
        return self.composite & self.time_mask

    def before(self, t_ms: int) -> EventIndex:
        """The events strictly before `t_ms` (a copy, still sorted)."""
        keep = self.times() < t_ms
        payload = None if self.payload is None else np.asarray(self.payload)[keep]
        return EventIndex(np.asarray(self.composite)[keep], self.bits, payload)

    def bounds(self, keys: np.ndarray, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's events before `t_ms` are `composite[lo:hi]` (and `payload[lo:hi]`)."""
        base = keys.astype(np.int64) << self.bits
        t = np.minimum(np.maximum(t_ms, 0), self.time_mask)
        return self._search(base), self._search(base | t)

    def _search(self, values: np.ndarray) -> np.ndarray:
        """Positions of `values` in the index. Many values are searched in sorted order: each
        search then starts where the last one ended, in memory the last one brought into the
        cache (5-6× faster for a training set's millions of rows in the course's 69 M views)."""
        if values.size < SORTED_SEARCH:
            return np.searchsorted(self.composite, values, side="left")
        order = np.argsort(values)
        positions = np.empty(values.shape, dtype=np.int64)
        positions[order] = np.searchsorted(self.composite, values[order], side="left")
        return positions

    def count_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds(keys, t_ms)
        return hi - lo

    def first_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Time (ms) of each key's first event, if it is before `t_ms`; -1 otherwise."""
        lo, hi = self.bounds(keys, t_ms)
        if not self.composite.size:
            return np.full(lo.shape, -1)
        first = self.composite[np.minimum(lo, self.composite.size - 1)] & self.time_mask
        return np.where(hi > lo, first, -1)

    def last_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Time (ms) of each key's last event strictly before `t_ms`; -1 when there is none."""
        lo, hi = self.bounds(keys, t_ms)
        if not self.composite.size:
            return np.full(hi.shape, -1)
        last = self.composite[np.maximum(hi - 1, 0)] & self.time_mask
        return np.where(hi > lo, last, -1)

    def payloads(self) -> np.ndarray:
        """The payload of every event in index order (`payload`, for an index built with one)."""
        if self.payload is None:
            raise TypeError("this index was built without a payload")
        return self.payload

    def payload_before(self, key: int, t_ms: int) -> np.ndarray:
        lo, hi = self.bounds(np.array([key]), np.array([t_ms]))
        return self.payloads()[lo[0] : hi[0]].astype(np.int64)
