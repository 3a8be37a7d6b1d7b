"""A feed request as a ranker sees it, in the parts that change at different rates.

Most of a model's input matrix is the same for every request of an hour: the candidates' own
columns and their history as of that hour (the *snapshot*). The rest is the request's own
columns (user, time, the user's history), columns that vary by group of posts (the user's
history on the post's topic or cluster), and columns that vary post by post (the user × post
affinity). A plain backend assembles the full matrix from these parts; the fast path keeps one
ranker per snapshot and reads the other parts as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

# how a model input column varies (the fast path's partition of the columns)
Kind = Literal["request", "post", "pair", "dense"]


@dataclass(frozen=True, eq=False)
class Layout:
    """How each input column of a model varies, in feature order: "request" (one value per
    request), "pair" (per group of posts), "post" (per post, fixed within a snapshot), "dense"
    (per request and post); and each candidate's post group, the combination of the groupings
    its pair columns use."""

    kinds: tuple[Kind, ...]
    post_group: np.ndarray  # int64[n_posts]
    n_groups: int


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The candidates' post columns as of one hour or day, zeros in every other column.

    `key` tells snapshots apart: equal keys mean equal bases (the model's inputs and the hour).
    `family` is shared by the snapshots of one hour of catalogues grown from one another by added
    posts: an earlier one's rows are the first rows of a later one's."""

    key: tuple
    base: np.ndarray  # float32[n_posts, n_features]
    layout: Layout
    family: tuple = ()


@dataclass(frozen=True, eq=False)
class GroupColumns:
    """Columns whose value depends on the candidate's group under one grouping."""

    codes: np.ndarray  # int64[n_posts]: each candidate's group
    values: dict[int, np.ndarray]  # column position -> float32[n_groups]


@dataclass(frozen=True, eq=False)
class RankingRequest:
    snapshot: Snapshot
    constant: np.ndarray  # float32[n_features]: the request's own columns, zeros elsewhere
    groups: tuple[GroupColumns, ...] = ()
    dense: dict[int, np.ndarray] = field(default_factory=dict)  # position -> float32[n_posts]

    def matrix(self) -> np.ndarray:
        """float32[n_posts, n_features]: the model's input, one row per candidate.

        x + 0 is exact, so adding the constant row to the snapshot keeps every value bit for
        bit; only the group and dense columns are written one by one."""
        out = self.snapshot.base + self.constant
        for group in self.groups:
            for position, values in group.values.items():
                out[:, position] = values[group.codes]
        for position, values in self.dense.items():
            out[:, position] = values
        return out

    def rows(self, rows: slice) -> RankingRequest:
        """The same request over the candidates at `rows` only."""
        layout = self.snapshot.layout
        part = Layout(layout.kinds, layout.post_group[rows], layout.n_groups)
        return RankingRequest(
            Snapshot((*self.snapshot.key, rows.start, rows.stop), self.snapshot.base[rows], part),
            self.constant,
            tuple(GroupColumns(g.codes[rows], g.values) for g in self.groups),
            {position: values[rows] for position, values in self.dense.items()},
        )

    def column(self, position: int, rows: np.ndarray | None = None) -> np.ndarray:
        """One column's values at the candidates `rows` (all by default), without assembling
        the matrix."""
        every = slice(None) if rows is None else rows
        for group in self.groups:
            if position in group.values:
                return group.values[position][group.codes[every]]
        if position in self.dense:
            return self.dense[position][every]
        return self.snapshot.base[every, position] + self.constant[position]
