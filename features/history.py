"""Point-in-time history: how many events a key (user, user × topic, post) had before a time.

Every event table is held as one sorted int64 array of composite keys `key << bits | t`, where
`t` is the event's time in milliseconds since the history's epoch. The number of events of a key
strictly before time `t` is then the distance between two binary searches, so one vectorised
`np.searchsorted` answers millions of training rows offline and a handful of keys per request
online, with the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

T = TypeVar("T")

# smoothing of like rates toward a prior: (likes + weight * prior) / (views + weight)
PRIOR_RATE = 0.1
USER_WEIGHT = 10.0
GROUP_WEIGHT = 5.0
POST_WEIGHT = 50.0

# a *lift* is a like rate over the whole feed's rate before the same moment: rates rise and
# fall with the season and the audience, lifts keep their meaning between training and serving
USER_COLUMNS = ("hist_user_views", "hist_user_likes", "hist_user_like_rate", "hist_user_lift")
POST_COLUMNS = ("hist_post_views", "hist_post_likes", "hist_post_like_rate", "hist_post_lift")
# the like rate of all posts in the post's text cluster: a text-informed prior for its own rate
TEXT_CLUSTER_COLUMNS = ("hist_text_cluster_like_rate", "hist_text_cluster_lift")
CLUSTER_WEIGHT = 200.0
# a grouping of posts (name -> the post column holding each post's group code)
GROUPINGS = {"topic": "topic_code", "cluster": "emb_cluster"}


def group_columns(grouping: str) -> tuple[str, ...]:
    prefix = f"hist_user_{grouping}"
    return (f"{prefix}_views", f"{prefix}_likes", f"{prefix}_like_rate", f"{prefix}_lift")


@dataclass(frozen=True)
class Events:
    """One action's events (views or likes): parallel arrays, any order."""

    user_ids: np.ndarray  # int64
    post_ids: np.ndarray  # int64
    t_ms: np.ndarray  # int64, milliseconds since the epoch of the History


class EventIndex:
    """Counts of events per key strictly before a time; optionally the events' post ids."""

    def __init__(
        self, keys: np.ndarray, t_ms: np.ndarray, bits: int, payload: np.ndarray | None = None
    ) -> None:
        if keys.size and int(keys.max()).bit_length() + bits > 62:
            raise ValueError(f"{int(keys.max())} keys do not fit beside {bits} time bits")
        composite = (keys.astype(np.int64) << bits) | t_ms
        order = np.argsort(composite, kind="stable")
        self.bits = bits
        self.composite = composite[order]
        self.payload = None if payload is None else payload[order]

    def bounds(self, keys: np.ndarray, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's events before `t_ms` are `composite[lo:hi]` (and `payload[lo:hi]`)."""
        base = keys.astype(np.int64) << self.bits
        t = np.minimum(np.maximum(t_ms, 0), (1 << self.bits) - 1)
        return (
            np.searchsorted(self.composite, base, side="left"),
            np.searchsorted(self.composite, base | t, side="left"),
        )

    def count_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds(keys, t_ms)
        return hi - lo

    def first_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Time (ms) of each key's first event, if it is before `t_ms`; -1 otherwise."""
        lo, hi = self.bounds(keys, t_ms)
        first = (
            self.composite[np.minimum(lo, max(self.composite.size - 1, 0))]
            if self.composite.size
            else np.zeros(lo.shape, np.int64)
        )
        return np.where(hi > lo, first & ((1 << self.bits) - 1), -1)

    def last_before(self, keys: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Time (ms) of each key's last event strictly before `t_ms`; -1 when there is none."""
        lo, hi = self.bounds(keys, t_ms)
        last = self.composite[np.maximum(hi - 1, 0)] & ((1 << self.bits) - 1)
        return np.where(hi > lo, last, -1) if self.composite.size else np.full(hi.shape, -1)

    def payloads(self) -> np.ndarray:
        """The payload of every event in index order (`payload`, for an index built with one)."""
        if self.payload is None:
            raise TypeError("this index was built without a payload")
        return self.payload

    def payload_before(self, key: int, t_ms: int) -> np.ndarray:
        lo, hi = self.bounds(np.array([key]), np.array([t_ms]))
        return self.payloads()[lo[0] : hi[0]]


@dataclass(frozen=True)
class Grouping:
    """Posts grouped by a code (topic, embedding cluster) and the user × group event indexes."""

    name: str
    codes: np.ndarray  # codes[post_id] = group, -1 for no such post
    n_groups: int
    views: EventIndex
    likes: EventIndex


def _groups_of(events: Events, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each event's post group under `codes` (by post id), and which events have one."""
    known = events.post_ids < codes.size
    group = np.full(events.post_ids.shape, -1, dtype=np.int64)
    group[known] = codes[events.post_ids[known]]
    return group, group >= 0


def smoothed(
    likes: np.ndarray, views: np.ndarray, prior: np.ndarray | float, weight: float
) -> np.ndarray:
    return (likes + weight * prior) / (views + weight)


@dataclass
class History:
    """The view and like history of a world, queried strictly before given times."""

    views: Events
    likes: Events
    epoch: np.datetime64  # datetime64[ms], at or before the first event
    bits: int
    _indexes: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_events(cls, views: tuple, likes: tuple) -> History:
        """`views`/`likes`: (user_ids, post_ids, timestamps datetime64) arrays."""
        stamps = np.concatenate([views[2], likes[2]]).astype("datetime64[ms]")
        epoch = (
            stamps.min().astype("datetime64[D]").astype("datetime64[ms]")
            if stamps.size
            else np.datetime64("2000-01-01", "ms")
        )
        span = int((stamps.max() - epoch).astype(np.int64)) if stamps.size else 0
        bits = (span + 2).bit_length()
        to_ms = lambda t: (t.astype("datetime64[ms]") - epoch).astype(np.int64)  # noqa: E731
        return cls(
            Events(views[0].astype(np.int64), views[1].astype(np.int64), to_ms(views[2])),
            Events(likes[0].astype(np.int64), likes[1].astype(np.int64), to_ms(likes[2])),
            epoch,
            bits,
        )

    def to_ms(self, times: np.ndarray | np.datetime64) -> np.ndarray:
        """Milliseconds since the epoch, floored: an event in the same millisecond as a query
        counts as not-before, so flooring can only drop events, never leak them."""
        return (np.asarray(times).astype("datetime64[ms]") - self.epoch).astype(np.int64)

    def _index(self, name: str, build: Callable[[], T]) -> T:
        """Built once, on first use: indexes, totals and sorted times by name."""
        if name not in self._indexes:
            self._indexes[name] = build()
        return self._indexes[name]

    def _by_user(self, action: str) -> EventIndex:
        events = getattr(self, action)
        return self._index(
            f"user/{action}",
            lambda: EventIndex(
                events.user_ids,
                events.t_ms,
                self.bits,
                payload=events.post_ids if action == "likes" else None,
            ),
        )

    def _by_post(self, action: str) -> EventIndex:
        events = getattr(self, action)
        return self._index(
            f"post/{action}", lambda: EventIndex(events.post_ids, events.t_ms, self.bits)
        )

    def grouping(self, name: str, codes: np.ndarray) -> Grouping:
        """The user × group indexes for `codes` (built once per distinct mapping)."""
        digest = hashlib.sha1(codes.tobytes()).hexdigest()
        n_groups = int(codes.max()) + 1

        def by_group(events: Events) -> EventIndex:
            group, keep = _groups_of(events, codes)
            return EventIndex(
                events.user_ids[keep] * n_groups + group[keep], events.t_ms[keep], self.bits
            )

        return self._index(
            f"group/{name}/{digest}",
            lambda: Grouping(name, codes, n_groups, by_group(self.views), by_group(self.likes)),
        )

    def group_totals(self, name: str, codes: np.ndarray) -> dict[str, EventIndex]:
        """Views and likes of all posts of each group (`codes` by post id), keyed by group."""
        digest = hashlib.sha1(codes.tobytes()).hexdigest()

        def by_group(events: Events) -> EventIndex:
            group, keep = _groups_of(events, codes)
            return EventIndex(group[keep], events.t_ms[keep], self.bits)

        return self._index(
            f"totals/{name}/{digest}",
            lambda: {"views": by_group(self.views), "likes": by_group(self.likes)},
        )

    def user_block(self, users: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        t = self.to_ms(times)
        views = self._by_user("views").count_before(users, t)
        likes = self._by_user("likes").count_before(users, t)
        rate = smoothed(likes, views, PRIOR_RATE, USER_WEIGHT)
        return dict(zip(USER_COLUMNS, (views, likes, rate, rate / self.feed_rate(t))))

    def feed_rate(self, t_ms: np.ndarray) -> np.ndarray:
        """Likes per view of the whole feed before each of `t_ms` (the prior before any)."""
        views = self.total_before("views", t_ms)
        return smoothed(self.total_before("likes", t_ms), views, PRIOR_RATE, 1.0)

    def group_block(
        self,
        grouping: Grouping,
        users: np.ndarray,
        groups: np.ndarray,
        times: np.ndarray,
        user_rate: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """A user's views/likes on posts of one group (topic, cluster), rate and lift over the
        user's overall rate: the user's own taste for that group, as known before `times`."""
        keys = users * grouping.n_groups + groups
        t = self.to_ms(times)
        views = grouping.views.count_before(keys, t)
        likes = grouping.likes.count_before(keys, t)
        rate = smoothed(likes, views, user_rate, GROUP_WEIGHT)
        return dict(zip(group_columns(grouping.name), (views, likes, rate, rate / user_rate)))

    def most_liked(self, posts: np.ndarray, day: np.datetime64) -> np.ndarray:
        """`posts`, most liked first by the likes known at the start of `day` (the course's
        popularity; ties keep the given order)."""
        likes = self._by_post("likes").count_before(posts, self.to_ms(np.full(posts.size, day)))
        return posts[np.argsort(-likes, kind="stable")]

    def post_block(
        self, posts: np.ndarray, times: np.ndarray, text_clusters: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """A post's views/likes before the start of the day of `times`: one snapshot a day.
        With `text_clusters` (cluster by post id, -1 for none), also its cluster's like rate."""
        t = self.to_ms(np.asarray(times).astype("datetime64[D]"))
        views = self._by_post("views").count_before(posts, t)
        likes = self._by_post("likes").count_before(posts, t)
        rate, feed = smoothed(likes, views, PRIOR_RATE, POST_WEIGHT), self.feed_rate(t)
        out = dict(zip(POST_COLUMNS, (views, likes, rate, rate / feed)))
        if text_clusters is not None:
            totals = self.group_totals("text", text_clusters)
            known = (posts >= 0) & (posts < text_clusters.size)
            code = np.where(known, text_clusters[np.where(known, posts, 0)], -1)
            keys = np.maximum(code, 0)
            rate = smoothed(
                totals["likes"].count_before(keys, t),
                totals["views"].count_before(keys, t),
                PRIOR_RATE,
                CLUSTER_WEIGHT,
            )
            rate = np.where(code >= 0, rate, np.nan)
            out.update(zip(TEXT_CLUSTER_COLUMNS, (rate, rate / feed)))
        return out

    def post_index(self, action: str) -> EventIndex:
        """Events of one action ("views" or "likes") keyed by post."""
        return self._by_post(action)

    def user_index(self, action: str) -> EventIndex:
        """Events of one action keyed by user (likes carry their post ids as payload)."""
        return self._by_user(action)

    def total_before(self, action: str, t_ms: np.ndarray) -> np.ndarray:
        """Events of one action, all keys together, strictly before each of `t_ms`."""
        times = self._index(f"all/{action}", lambda: np.sort(getattr(self, action).t_ms))
        return np.searchsorted(times, t_ms, side="left")

    def post_likes_between(
        self, posts: np.ndarray, start: np.datetime64 | None, end: np.datetime64
    ) -> np.ndarray:
        """Likes of each post in [start, end) (since the first event when `start` is None)."""
        index = self._by_post("likes")
        count = index.count_before(posts, np.full(posts.shape, self.to_ms(end)))
        if start is not None:
            count = count - index.count_before(posts, np.full(posts.shape, self.to_ms(start)))
        return count

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        liked = self._by_user("likes").payload_before(user_id, int(self.to_ms(at)))
        return np.unique(liked)

    def likes_before(self, user_id: int, at: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """The user's likes before `at`, oldest first: (post ids, times as datetime64[ms])."""
        index = self._by_user("likes")
        lo, hi = index.bounds(np.array([user_id]), np.array([self.to_ms(at)]))
        t_ms = index.composite[lo[0] : hi[0]] & ((1 << index.bits) - 1)
        return index.payloads()[lo[0] : hi[0]], self.epoch + t_ms.astype("timedelta64[ms]")
