"""Point-in-time history: how many events a key (user, user × topic, post) had before a time.

The views and likes of a world, each in two `EventIndex`es (keyed by user, with the post of
every event; keyed by post) and a count per minute of the whole feed. `feedrank build` sorts
them once (features/history_store.py); the server maps the stored arrays and starts without
sorting anything. Every feature of a user, a post or a group of posts is a count of events
strictly before a time, computed from these, offline for millions of training rows and online
for one request, with the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

import numpy as np

from feedrank.features.event_index import EventIndex

T = TypeVar("T")

ACTIONS = ("views", "likes")
MINUTE_MS = 60_000
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
    """The user's views, likes, like rate and lift on a group of posts, then its
    `audience_columns`."""
    prefix = f"hist_user_{grouping}"
    own = (f"{prefix}_views", f"{prefix}_likes", f"{prefix}_like_rate", f"{prefix}_lift")
    return (*own, *audience_columns(grouping))


def audience_columns(grouping: str) -> tuple[str, ...]:
    """The lift on a group of posts of the users who share the user's attributes
    (features/audience.py), and the user's own rate smoothed toward that audience's instead of
    toward the user's overall rate, as a lift."""
    return (f"hist_audience_{grouping}_lift", f"hist_user_{grouping}_posterior_lift")


@dataclass(frozen=True)
class Grouping:
    """Posts grouped by a code (topic, embedding cluster)."""

    name: str
    codes: np.ndarray  # codes[post_id] = group, -1 for no such post
    n_groups: int

    def of(self, post_ids: np.ndarray) -> np.ndarray:
        """Each post's group, -1 for a post without one."""
        return take_by_id(self.codes, post_ids)

    @cached_property
    def digest(self) -> str:
        """Names the grouping by its codes (indexes and tables built for it are kept by it)."""
        return hashlib.sha1(self.codes.tobytes()).hexdigest()


def take_by_id(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """`table[ids]` for a table indexed by post id, -1 for an id outside it."""
    if ids.size and (int(ids.max()) >= table.size or int(ids.min()) < 0):
        inside = (ids >= 0) & (ids < table.size)
        return np.where(inside, table[np.where(inside, ids, 0)], -1)
    return table[ids]


def clamp(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """`np.clip` for the request path: on a few integers np.clip costs ~3× this (it looks up
    the dtype's limits on every call)."""
    return np.minimum(np.maximum(values, low), high)


def smoothed(
    likes: np.ndarray, views: np.ndarray, prior: np.ndarray | float, weight: float
) -> np.ndarray:
    return (likes + weight * prior) / (views + weight)


def per_minute(t_ms: np.ndarray, minutes: int) -> np.ndarray:
    """Events before the start of minute m since the epoch, for m in 0..`minutes` (every
    event is in the first `minutes`)."""
    counts = np.bincount(t_ms // MINUTE_MS, minlength=minutes)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


@dataclass
class History:
    """The view and like history of a world, queried strictly before given times."""

    epoch: np.datetime64  # datetime64[ms], at or before the first event
    bits: int  # time bits of the composites
    last_event: np.datetime64 | None  # datetime64[us]
    by_user: dict[str, EventIndex]  # per action, keyed by user, the post as payload
    by_post: dict[str, EventIndex]  # per action, keyed by post
    minutes: dict[str, np.ndarray]  # per action, `per_minute` counts of the whole feed
    _indexes: dict = field(default_factory=dict, repr=False)
    _last_posts: dict = field(default_factory=dict, repr=False)

    def to_ms(self, times: np.ndarray | np.datetime64) -> np.ndarray:
        """Milliseconds since the epoch, floored: an event in the same millisecond as a query
        counts as not-before, so flooring can only drop events, never leak them."""
        return (np.asarray(times).astype("datetime64[ms]") - self.epoch).astype(np.int64)

    def before(self, cutoff: np.datetime64) -> History:
        """The history as it was known just before `cutoff`."""
        t = int(self.to_ms(cutoff))
        by_post = {a: index.before(t) for a, index in self.by_post.items()}
        ends = [int(index.times().max()) for index in by_post.values() if index.composite.size]
        minutes = self.minutes["views"].size - 1
        return History(
            self.epoch,
            self.bits,
            self.epoch + np.timedelta64(max(ends), "ms") if ends else None,
            {a: index.before(t) for a, index in self.by_user.items()},
            by_post,
            {a: per_minute(by_post[a].times(), minutes) for a in ACTIONS},
        )

    def _index(self, name: str, build: Callable[[], T]) -> T:
        """Built once, on first use, by name."""
        if name not in self._indexes:
            self._indexes[name] = build()
        return self._indexes[name]

    def grouping(self, name: str, codes: np.ndarray) -> Grouping:
        return Grouping(name, codes, int(codes.max()) + 1)

    def _by_user_and_group(self, action: str, grouping: Grouping) -> EventIndex:
        """Events keyed by user × group: built for many rows at once (a training set)."""

        def build() -> EventIndex:
            index = self.by_user[action]
            group = grouping.of(np.asarray(index.payloads()))
            keep = group >= 0
            keys = index.keys()[keep] * grouping.n_groups + group[keep]
            return EventIndex.build(keys, index.times()[keep], self.bits)

        return self._index(f"group/{action}/{grouping.digest}", build)

    def _group_counts(
        self, action: str, grouping: Grouping, users: np.ndarray, groups: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        """Each (user, group)'s events before t. One user at one time (a request) is counted
        from the user's own events; many rows from a user × group index built for them."""
        if users.size and (users == users[0]).all() and (t == t[0]).all():
            group = grouping.of(self._posts_before(action, int(users[0]), int(t[0])))
            return np.bincount(group[group >= 0], minlength=grouping.n_groups)[groups]
        index = self._by_user_and_group(action, grouping)
        return index.count_before(users * grouping.n_groups + groups, t)

    def _posts_before(self, action: str, user: int, t_ms: int) -> np.ndarray:
        """The posts of a user's events before t; the last answer per action is kept, as a
        request asks it once per grouping (replaced whole, so threads may share it)."""
        key, posts = self._last_posts.get(action, (None, None))
        if key != (user, t_ms) or posts is None:
            posts = self.by_user[action].payload_before(user, t_ms)
            self._last_posts[action] = ((user, t_ms), posts)
        return posts

    def user_block(self, users: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        t = self.to_ms(times)
        views = self.by_user["views"].count_before(users, t)
        likes = self.by_user["likes"].count_before(users, t)
        rate = smoothed(likes, views, PRIOR_RATE, USER_WEIGHT)
        return dict(zip(USER_COLUMNS, (views, likes, rate, rate / self.feed_rate(t))))

    def feed_rate(self, t_ms: np.ndarray) -> np.ndarray:
        """Likes per view of the whole feed before the minute of each of `t_ms` (the prior
        before any)."""
        views = self.total_before("views", t_ms)
        return smoothed(self.total_before("likes", t_ms), views, PRIOR_RATE, 1.0)

    def group_block(
        self,
        grouping: Grouping,
        users: np.ndarray,
        groups: np.ndarray,
        times: np.ndarray,
        user_rate: np.ndarray,
        audience_lift: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """A user's views/likes on posts of one group (topic, cluster), rate and lift over the
        user's overall rate: the user's own taste for that group, as known before `times`; with
        the audience's lift on the group (`Audience.lift`), and the user's rate smoothed toward
        it."""
        t = self.to_ms(times)
        views = self._group_counts("views", grouping, users, groups, t)
        likes = self._group_counts("likes", grouping, users, groups, t)
        rate = smoothed(likes, views, user_rate, GROUP_WEIGHT)
        posterior = smoothed(likes, views, user_rate * audience_lift, GROUP_WEIGHT)
        values = (views, likes, rate, rate / user_rate, audience_lift, posterior / user_rate)
        return dict(zip(group_columns(grouping.name), values))

    def seen(self, posts: np.ndarray) -> bool:
        """Whether any of `posts` has an event in the history."""
        always = np.full(posts.size, np.iinfo(np.int64).max)
        return any(bool(index.count_before(posts, always).any()) for index in self.by_post.values())

    def most_liked(self, posts: np.ndarray, day: np.datetime64) -> np.ndarray:
        """`posts`, most liked first by the likes known at the start of `day` (the course's
        popularity; ties keep the given order)."""
        t = self.to_ms(np.full(posts.size, day))
        likes = self.by_post["likes"].count_before(posts, t)
        return posts[np.argsort(-likes, kind="stable")]

    def post_block(
        self, posts: np.ndarray, times: np.ndarray, text_clusters: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """A post's views/likes before the start of the day of `times`: one snapshot a day.
        With `text_clusters` (cluster by post id, -1 for none), also its cluster's like rate."""
        t = self.to_ms(np.asarray(times).astype("datetime64[D]"))
        views = self.by_post["views"].count_before(posts, t)
        likes = self.by_post["likes"].count_before(posts, t)
        rate, feed = smoothed(likes, views, PRIOR_RATE, POST_WEIGHT), self.feed_rate(t)
        out = dict(zip(POST_COLUMNS, (views, likes, rate, rate / feed)))
        if text_clusters is not None:
            clusters = self.grouping("text", text_clusters)
            code = clusters.of(posts)
            rate = smoothed(
                self._group_totals("likes", clusters, code, t),
                self._group_totals("views", clusters, code, t),
                PRIOR_RATE,
                CLUSTER_WEIGHT,
            )
            rate = np.where(code >= 0, rate, np.nan)
            out.update(zip(TEXT_CLUSTER_COLUMNS, (rate, rate / feed)))
        return out

    def _group_totals(
        self, action: str, grouping: Grouping, groups: np.ndarray, t_ms: np.ndarray
    ) -> np.ndarray:
        """Events of all posts of each row's group before its time (0 for group -1): the posts'
        own counts summed by group, once per distinct time."""
        members = np.flatnonzero(grouping.codes >= 0)
        member_groups = grouping.codes[members]
        moments, row_moment = np.unique(t_ms, return_inverse=True)
        table = np.zeros((moments.size, grouping.n_groups + 1), dtype=np.int64)
        for i, moment in enumerate(moments):
            counts = self.by_post[action].count_before(members, np.full(members.size, moment))
            table[i, :-1] = np.bincount(member_groups, counts, grouping.n_groups)
        return table[row_moment.reshape(-1), groups]

    def post_index(self, action: str) -> EventIndex:
        """Events of one action ("views" or "likes") keyed by post."""
        return self.by_post[action]

    def user_index(self, action: str) -> EventIndex:
        """Events of one action keyed by user, each with its post as payload."""
        return self.by_user[action]

    def total_before(self, action: str, t_ms: np.ndarray) -> np.ndarray:
        """Events of one action, all keys together, before the start of each time's minute."""
        counts = self.minutes[action]
        return counts[clamp(np.asarray(t_ms) // MINUTE_MS, 0, counts.size - 1)]

    def post_likes_between(
        self, posts: np.ndarray, start: np.datetime64 | None, end: np.datetime64
    ) -> np.ndarray:
        """Likes of each post in [start, end) (since the first event when `start` is None)."""
        index = self.by_post["likes"]
        count = index.count_before(posts, np.full(posts.shape, self.to_ms(end)))
        if start is not None:
            count = count - index.count_before(posts, np.full(posts.shape, self.to_ms(start)))
        return count

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        return np.unique(self.by_user["likes"].payload_before(user_id, int(self.to_ms(at))))

    def likes_before(self, user_id: int, at: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """The user's likes before `at`, oldest first: (post ids, times as datetime64[ms])."""
        index = self.by_user["likes"]
        lo, hi = index.bounds(np.array([user_id]), np.array([self.to_ms(at)]))
        t_ms = index.composite[lo[0] : hi[0]] & index.time_mask
        posts = index.payloads()[lo[0] : hi[0]].astype(np.int64)
        return posts, self.epoch + t_ms.astype("timedelta64[ms]")

    def random_liker(self, at: np.datetime64, rng: np.random.Generator) -> int | None:
        """The user of a like chosen uniformly among the likes before `at`."""
        index = self.by_user["likes"]
        before = np.flatnonzero(index.times() < self.to_ms(at))
        if not before.size:
            return None
        return int(index.composite[rng.choice(before)] >> index.bits)
