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

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from feedrank.features.history import ACTIONS, PRIOR_RATE, Grouping, History, clamp, smoothed

# the usual audience age bands: under 18, 18-24, 25-34, 35-44, 45-54, 55 and over
AGE_BANDS = np.array([18, 25, 35, 45, 55])
# the one-hot user columns (features/users.py) read as attributes; exp_group is the experiment's
# own random split, not a trait of the user
FAMILIES = ("country", "os", "source")
DAY_MS = 86_400_000
# views of an attribute value on a group that weigh as much as the group's own rate
WEIGHT = 200.0
DAY_TABLES = 8  # days of lifts by attribute combination kept (requests ask about "today")


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
    first: by the viewer's attribute values, and in all. A lift depends on the user only
    through the combination of their attribute values, so each day's lifts are one table by
    combination and group, computed once and looked up by every row of that day."""

    combination: np.ndarray  # int64[n_users]: each user row's row of `combinations`
    combinations: np.ndarray  # int64[n_combinations, n_attributes]: the distinct codes
    views: np.ndarray  # int64[n_days + 1, n_values, n_groups]: events before day k
    likes: np.ndarray
    group_views: np.ndarray  # int64[n_days + 1, n_groups]
    group_likes: np.ndarray
    epoch_ms: int  # the history's epoch, in milliseconds since 1970
    first_day: int  # the calendar day of row 0, in days since 1970
    _days: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        combinations, combination = _combinations(codes)
        return cls(
            combination, combinations, views, likes, group_views, group_likes, epoch_ms, first_day
        )

    def lift(self, user_rows: np.ndarray, groups: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """The audience lift of each (user row, group) as of the start of the day of `t_ms`
        (milliseconds since the history's epoch); 1 for an unknown user (row -1) or a group
        none of the tables' posts is in."""
        last = self.group_views.shape[0] - 1
        day = clamp((self.epoch_ms + np.asarray(t_ms)) // DAY_MS - self.first_day, 0, last)
        known = (user_rows >= 0) & (groups >= 0) & (groups < self.group_views.shape[1])
        groups = np.where(known, groups, 0)
        combination = self.combination[np.maximum(user_rows, 0)]
        days = np.unique(day)
        if days.size <= 1:  # a request
            lifts = self._day(int(days[0]))[combination, groups] if days.size else np.ones(0)
            return np.where(known, lifts, 1.0)
        lifts = np.empty(day.shape)
        order = np.argsort(day, kind="stable")
        bounds = np.searchsorted(day[order], days).tolist() + [day.size]
        for d, start, stop in zip(days.tolist(), bounds, bounds[1:]):
            rows = order[start:stop]
            lifts[rows] = self._day(d)[combination[rows], groups[rows]]
        return np.where(known, lifts, 1.0)

    def _day(self, day: int) -> np.ndarray:
        """float64[n_combinations, n_groups]: each combination's lift on each group as of the
        start of `day` (a row of the tables), the product over its attributes of their value's
        like rate on the group over the group's own, smoothed toward 1 (cached)."""
        with self._lock:
            table = self._days.get(day)
            if table is not None:
                self._days.move_to_end(day)
                return table
        rate = smoothed(self.group_likes[day], self.group_views[day], PRIOR_RATE, 1.0)
        table = np.ones((self.combinations.shape[0], rate.size))
        for values in self.combinations.T:  # attribute after attribute
            table *= smoothed(self.likes[day, values], self.views[day, values], rate, WEIGHT) / rate
        with self._lock:
            self._days[day] = table
            while len(self._days) > DAY_TABLES:
                self._days.popitem(last=False)
        return table


def _combinations(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `codes` and each user's row among them."""
    if codes.shape[1] == 0:
        return np.zeros((1, 0), np.int64), np.zeros(codes.shape[0], np.int64)
    combinations, combination = np.unique(codes, axis=0, return_inverse=True)
    return combinations, combination.reshape(-1).astype(np.int64)


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
