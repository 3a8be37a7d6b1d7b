"""Which posts a feed shows: the best scores, never a post the user liked, ties by post id.

Shared by the server and the offline replay (ab/replay.py), so that the replay shows what
the server would.
"""

from __future__ import annotations

import numpy as np


def rank(post_ids: np.ndarray, scores: np.ndarray, exclude: np.ndarray, limit: int) -> np.ndarray:
    """Top `limit` post ids by score, without `exclude`; ties broken by the smaller post id."""
    n = len(post_ids)
    # the best `limit` + len(exclude) posts hold the answer however many of them are excluded;
    # so only they are looked up and sorted, not the catalogue
    m = min(n, limit + len(exclude))
    if m == 0 or limit <= 0:
        return post_ids[:0]
    if m < n:
        # every post scoring at least the m-th best, ties at the boundary included, so the id
        # order below decides between them (argpartition alone would pick arbitrarily)
        top = np.flatnonzero(scores >= np.partition(scores, n - m)[n - m])
    else:
        top = np.arange(n)
    top = top[~_marked(exclude, post_ids[top])]
    return post_ids[top[np.lexsort((post_ids[top], -scores[top]))][:limit]]


def popular_fallback(
    popular: np.ndarray, catalog_ids: np.ndarray, exclude: np.ndarray, limit: int
) -> np.ndarray:
    """Most popular posts known before the request, not liked; then the rest of the catalog."""
    order = np.concatenate([popular, catalog_ids[~_marked(popular, catalog_ids)]])
    return order[~_marked(exclude, order)][:limit]


def _marked(marks: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """`np.isin(ids, marks)` for non-negative ids through a dense table: several times faster
    than np.isin at feed sizes (tens of marks, thousands of ids)."""
    spare = int(ids.max(initial=0)) + 1  # marks beyond every id land here
    table = np.zeros(spare + 1, dtype=bool)
    table[np.minimum(marks, spare)] = True
    return table[ids]
