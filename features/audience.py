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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from feedrank.features.history import ACTIONS, PRIOR_RATE, Grouping, History, smoothed

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
    """Views and likes by post group before the start of each calendar day from the history's
    first: by the viewer's attribute values, and in all."""

    codes: np.ndarray  # int64[n_users, n_attributes], by the user table's row
    views: np.ndarray  # int64[n_days + 1, n_values, n_groups]: events before day k
    likes: np.ndarray
    group_views: np.ndarray  # int64[n_days + 1, n_groups]
    group_likes: np.ndarray
    epoch_ms: int  # the history's epoch, in milliseconds since 1970
    first_day: int  # the calendar day of row 0, in days since 1970

    @classmethod
    def build(
        cls,
        history: History,
        codes: np.ndarray,
        user_rows: Callable[[np.ndarray], np.ndarray],
        grouping: Grouping,
    ) -> Audience:
        """From every event of `history`; `user_rows(ids)` gives each user's row of `codes`
        (-1 for a user without one)."""
        epoch_ms = int(history.epoch.astype("datetime64[ms]").astype(np.int64))
        indexes = [history.user_index(action) for action in ACTIONS]
        last = max((int(i.times().max()) for i in indexes if i.composite.size), default=0)
        first_day = epoch_ms // DAY_MS
        rows = (epoch_ms + last) // DAY_MS - first_day + 2
        n_values = int(codes.max(initial=0)) + 1
        tables = []
        for index in indexes:
            users = user_rows(index.keys())
            group = grouping.of(np.asarray(index.payloads(), np.int64))
            known = (users >= 0) & (group >= 0)
            # an event counts from the start of the next day on
            day = (epoch_ms + index.times()[known]) // DAY_MS - first_day + 1
            counts = _Counts(day, group[known], rows, grouping.n_groups)
            by_value = np.zeros((rows, n_values, grouping.n_groups), np.int64)
            viewers = users[known]
            for attribute in range(codes.shape[1]):  # one column at a time: events × 8 bytes
                by_value += counts.by(codes[viewers, attribute], n_values)
            tables.append((by_value, counts.by(np.zeros(day.size, np.int64), 1)[:, 0]))
        (views, group_views), (likes, group_likes) = tables
        return cls(codes, views, likes, group_views, group_likes, epoch_ms, first_day)

    def lift(self, user_rows: np.ndarray, groups: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """The audience lift of each (user row, group) as of the start of the day of `t_ms`
        (milliseconds since the history's epoch); 1 for an unknown user (row -1) or a group
        none of the tables' posts is in."""
        last = self.group_views.shape[0] - 1
        day = np.clip((self.epoch_ms + np.asarray(t_ms)) // DAY_MS - self.first_day, 0, last)
        known = (user_rows >= 0) & (groups >= 0) & (groups < self.group_views.shape[1])
        groups = np.where(known, groups, 0)
        rate = smoothed(
            self.group_likes[day, groups], self.group_views[day, groups], PRIOR_RATE, 1.0
        )
        cell = (day[:, None], self.codes[np.maximum(user_rows, 0)], groups[:, None])
        own = smoothed(self.likes[cell], self.views[cell], rate[:, None], WEIGHT) / rate[:, None]
        return np.where(known, np.prod(own, axis=1), 1.0)


@dataclass(frozen=True)
class _Counts:
    """Events by day and group, counted by a value of each event: cumulative over days."""

    day: np.ndarray
    group: np.ndarray
    rows: int
    n_groups: int

    def by(self, values: np.ndarray, n_values: int) -> np.ndarray:
        """int64[rows, n_values, n_groups]: row k counts the events of days before k."""
        size = self.rows * n_values * self.n_groups
        flat = (self.day * n_values + values) * self.n_groups + self.group
        cell = np.bincount(flat, minlength=size).reshape(self.rows, n_values, self.n_groups)
        return np.cumsum(cell, axis=0)
