"""Feature values for arbitrary (user, post, time) rows: the training set's side of the features.

The values come from the same `History` blocks, user matrix and post tables as `ModelInputs`
(serving); tests hold the two equal row for row.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from feedrank.features.affinity import Affinity
from feedrank.features.online import (
    OnlineFeatures,
    group_codes,
    text_cluster_codes,
    uses_audience,
)
from feedrank.features.recency import recency_block
from feedrank.features.specs import FeatureSpec, groupings_used
from feedrank.features.timefeatures import time_block


def _post_rows(posts: pl.DataFrame, post_ids: np.ndarray) -> np.ndarray:
    """Row of each post in `posts`, -1 for a post the table does not have."""
    ids = posts["post_id"].to_numpy().astype(np.int64)
    dense = np.full(max(int(ids.max()), int(post_ids.max(initial=0))) + 1, -1, dtype=np.int64)
    dense[ids] = np.arange(ids.size)
    return dense[post_ids]


def _take(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """matrix[rows] with NaN where the row is unknown (-1)."""
    return np.where((rows >= 0)[:, None], matrix[np.maximum(rows, 0)], np.nan)


def feature_rows(
    online: OnlineFeatures,
    specs: list[FeatureSpec],
    posts: pl.DataFrame,
    user_ids: np.ndarray,
    post_ids: np.ndarray,
    times: np.ndarray,
) -> dict[str, np.ndarray]:
    """{feature name: float32 values}, one value per row, each from data before the row's time."""
    history = online.history
    values = dict(zip(online.user_columns, _take(online.user_matrix, online.user_rows(user_ids)).T))
    post_columns = [c for c in posts.columns if c != "post_id"]
    post_rows = _post_rows(posts, post_ids)
    values.update(zip(post_columns, _take(posts.select(post_columns).to_numpy(), post_rows).T))
    values.update(time_block(times))
    values.update(history.user_block(user_ids, times))
    for grouping in groupings_used([s.name for s in specs]):
        groups_of = history.grouping(grouping, group_codes(posts, grouping))
        codes = groups_of.codes
        groups = np.where(post_rows >= 0, codes[np.minimum(post_ids, codes.size - 1)], -1)
        in_group = np.maximum(groups, 0)  # -1 (no such post) as group 0, set to NaN below
        audience = (
            online.audience_lift(groups_of, user_ids, in_group, times)
            if uses_audience(grouping, {s.name for s in specs})
            else np.ones(in_group.size)
        )
        block = history.group_block(
            groups_of, user_ids, in_group, times, values["hist_user_like_rate"], audience
        )
        values.update({k: np.where(groups >= 0, v, np.nan) for k, v in block.items()})
    values.update(history.post_block(post_ids, times, text_cluster_codes(posts)))
    sources = {s.source for s in specs}
    if "recent" in sources:
        values.update(recency_block(history, post_ids, times))
    if "affinity" in sources:
        affinity = Affinity.of_posts(history, posts)
        if affinity is None:
            raise ValueError("affinity features need the posts' affinity_* vector columns")
        values.update(affinity.block(user_ids, post_ids, times))
    return {s.name: np.asarray(values[s.name], dtype=np.float32) for s in specs}
