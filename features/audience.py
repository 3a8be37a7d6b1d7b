"""The audience prior: how the users who share a user's attributes like each group of posts.

A user has viewed a few posts of each topic at most, so the user's own like rate on a topic is
mostly noise; what users of the same age band, gender, country, OS and source do on that topic
is known from thousands of views. For each attribute value and post group, the like rate of the
users with that value over the group's rate, as known at the start of each day (one snapshot a
day, as the posts' own history), smoothed toward 1; a user's *audience lift* on a group is the
product over the user's attributes (additive in log odds, the attributes taken as independent).
It is a feature of its own and the prior toward which the user's own rate on the group is
smoothed (features/history.py `group_block`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feedrank.features.history import History, smoothed, take_by_id

# the usual audience age bands: under 18, 18-24, 25-34, 35-44, 45-54, 55 and over
AGE_BANDS = np.array([18, 25, 35, 45, 55])
# the one-hot user columns (features/users.py) read as attributes; exp_group is the experiment's
# own random split, not a trait of the user
FAMILIES = ("country", "os", "source")
DAY_MS = 86_400_000
# views of an attribute value on a group that weigh as much as the group's own rate
WEIGHT = 200.0


def attribute_codes(columns: list[str], matrix: np.ndarray) -> np.ndarray:
    """int64[n_users, n_attributes]: each user's value of each attribute, the values of all
    attributes numbered on one axis (gender, age band, then each one-hot family present)."""
    attributes = []
    if "gender" in columns:
        gender = matrix[:, columns.index("gender")]
        attributes.append(np.unique(np.nan_to_num(gender, nan=-1.0), return_inverse=True)[1])
    if "age" in columns:
        attributes.append(np.searchsorted(AGE_BANDS, matrix[:, columns.index("age")], "right"))
    for family in FAMILIES:
        members = [i for i, c in enumerate(columns) if c.startswith(f"{family}_")]
        if members:
            attributes.append(np.argmax(matrix[:, members], axis=1))
    codes, offset = [], 0
    for values in attributes:
        codes.append(values.reshape(-1).astype(np.int64) + offset)
        offset += int(values.max(initial=0)) + 1
    return np.stack(codes, axis=1) if codes else np.zeros((matrix.shape[0], 0), np.int64)


@dataclass(frozen=True, eq=False)
class Audience:
    """Views and likes by post group before the start of each day since the history's epoch:
    by the viewer's attribute values, and in all."""

    codes: np.ndarray  # int64[n_users, n_attributes], by the user table's row
    views: np.ndarray  # int64[n_days + 1, n_values, n_groups]: events before day k
    likes: np.ndarray
    group_views: np.ndarray  # int64[n_days + 1, n_groups]
    group_likes: np.ndarray

    @classmethod
    def build(
        cls, history: History, codes: np.ndarray, user_ids: np.ndarray, post_groups: np.ndarray
    ) -> Audience:
        """From every event of `history`; `post_groups[post_id]` is the post's group (-1 for
        none), `user_ids` the sorted ids of the rows of `codes`."""
        n_groups = int(post_groups.max(initial=0)) + 1
        n_days = int(history.user_index("views").times().max(initial=0)) // DAY_MS + 1
        tables = {}
        for action in ("views", "likes"):
            index = history.user_index(action)
            keys = index.keys()
            rows = np.minimum(np.searchsorted(user_ids, keys), max(user_ids.size - 1, 0))
            group = take_by_id(post_groups, np.asarray(index.payloads(), np.int64))
            known = (group >= 0) & (user_ids[rows] == keys)
            t_ms = index.times()[known]
            # an event counts from the next day on
            day = np.minimum(t_ms // DAY_MS, n_days - 1) + 1
            counts = _Counts(day, group[known], n_days, n_groups)
            tables[action] = (
                counts.by(codes[rows[known]], int(codes.max(initial=0)) + 1),
                counts.by(np.zeros((t_ms.size, 1), np.int64), 1)[:, 0],
            )
        (views, group_views), (likes, group_likes) = tables.values()
        return cls(codes, views, likes, group_views, group_likes)

    def lift(self, user_rows: np.ndarray, groups: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """The audience lift of each (user row, group) as of the start of the day of `t_ms`;
        1 for an unknown user (row -1) or a group none of the tables' posts is in."""
        day = np.clip(np.asarray(t_ms) // DAY_MS, 0, self.group_views.shape[0] - 1)
        known = (user_rows >= 0) & (groups < self.group_views.shape[1])
        groups = np.where(known, groups, 0)
        rate = smoothed(self.group_likes[day, groups], self.group_views[day, groups], 0.1, 1.0)
        cell = (day[:, None], self.codes[np.maximum(user_rows, 0)], groups[:, None])
        own = smoothed(self.likes[cell], self.views[cell], rate[:, None], WEIGHT) / rate[:, None]
        return np.where(known, np.prod(own, axis=1), 1.0)


@dataclass(frozen=True)
class _Counts:
    """Events by day and group, counted by a value of each event: cumulative over days."""

    day: np.ndarray
    group: np.ndarray
    n_days: int
    n_groups: int

    def by(self, values: np.ndarray, n_values: int) -> np.ndarray:
        """int64[n_days + 1, n_values, n_groups]; `values` [n_events, k]: each event counts
        once per column, at its value in that column."""
        n_groups = self.n_groups
        size = (self.n_days + 1) * n_values * n_groups
        cell = np.zeros(size, np.int64)
        for column in values.T:
            flat = (self.day * n_values + column) * n_groups + self.group
            cell += np.bincount(flat, minlength=size)
        return np.cumsum(cell.reshape(self.n_days + 1, n_values, n_groups), axis=0)
