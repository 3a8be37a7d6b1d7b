"""Ranking and the fallback order, against plain-Python definitions of what they must return."""

from __future__ import annotations

import numpy as np
import pytest

from feedrank.server.ranking import popular_fallback, rank


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("limit", [1, 5, 100])
def test_rank_is_the_top_by_score_without_excluded_ties_by_smaller_id(seed, limit):
    rng = np.random.default_rng(seed)
    post_ids = rng.permutation(np.arange(1, 301, dtype=np.int64))
    scores = np.round(rng.random(300), 2)  # two decimals: many ties
    exclude = np.concatenate([rng.choice(post_ids, 40), [10_000, 301]]).astype(np.int64)
    banned = set(exclude.tolist())
    expected = sorted(
        (p for p in post_ids.tolist() if p not in banned),
        key=lambda p: (-scores[post_ids.tolist().index(p)], p),
    )[:limit]
    assert rank(post_ids, scores, exclude, limit).tolist() == expected


def test_rank_when_everything_is_excluded():
    ids = np.array([3, 1, 2], dtype=np.int64)
    assert rank(ids, np.array([0.1, 0.2, 0.3]), ids, 5).tolist() == []


def test_fallback_is_popular_first_then_the_catalogue_never_liked():
    popular = np.array([7, 3, 9], dtype=np.int64)
    catalogue = np.arange(1, 11, dtype=np.int64)
    liked = np.array([3, 1], dtype=np.int64)
    assert popular_fallback(popular, catalogue, liked, 5).tolist() == [7, 9, 2, 4, 5]
