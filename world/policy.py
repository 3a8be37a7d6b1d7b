"""Who shows up when, and what the (non-optimal) logging policy shows them.

The logging policy is popularity-biased random: each post has a fixed exposure weight (two
clusters, as in the course, mildly tied to quality through a noisy popularity signal; a few posts
are never shown), and every view draws a post from those weights regardless of the user.
"""

from __future__ import annotations

import numpy as np

from feedrank.world import catalog

# share of a day's activity in each hour 06..23: a morning bump, a lunch dip, an evening peak
HOUR_WEIGHTS = np.array(
    [1.5, 3.5, 5.0, 5.5, 5.0, 4.5, 4.8, 5.0, 4.6, 4.4, 4.6, 5.2, 6.0, 7.0, 8.0, 8.2, 7.4, 5.0]
)
HOUR_WEIGHTS = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
HOURS = np.arange(catalog.FIRST_HOUR, catalog.LAST_HOUR + 1)
WEEKDAY_FACTOR = np.array([1.0, 0.98, 0.97, 0.99, 1.02, 1.12, 1.10])  # Monday first
ACTIVITY_SIGMA = 1.1  # log-normal spread of how much each user scrolls
USER_CHUNK = 16_384


def days() -> np.ndarray:
    return np.arange(catalog.START, catalog.END + 1)


def day_weights() -> np.ndarray:
    """Share of all views on each day: a weekly rhythm on a slowly growing audience."""
    d = days()
    weekday = (d.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    weight = WEEKDAY_FACTOR[weekday] * np.linspace(0.9, 1.1, len(d))
    return weight / weight.sum()


def exposure_weights(quality: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Probability that a view shows each post: two popularity clusters, some never shown."""
    n = len(quality)
    popular = rng.random(n) < 1 / (1 + np.exp(-(0.8 * quality + rng.normal(0, 1, n) - 0.7)))
    weight = np.where(popular, 2.2, 1.0) * rng.lognormal(0, 0.12, n)
    weight[rng.random(n) < catalog.NEVER_SHOWN_SHARE] = 0.0
    return weight / weight.sum()


def view_counts(n_users: int, views: int, rng: np.random.Generator) -> np.ndarray:
    """Views per user and day [users, days]: heavy-tailed activity, every user at least once."""
    activity = rng.lognormal(0, ACTIVITY_SIGMA, n_users)
    floor = 1 if views >= n_users else 0
    per_user = floor + rng.multinomial(views - floor * n_users, activity / activity.sum())
    counts = np.empty((n_users, len(days())), np.int32)
    for start in range(0, n_users, USER_CHUNK):  # int64 draws a chunk at a time: less peak RSS
        counts[start : start + USER_CHUNK] = rng.multinomial(
            per_user[start : start + USER_CHUNK], day_weights()
        )
    return counts


def sample_hours(n: int, rng: np.random.Generator) -> np.ndarray:
    return HOURS[rng.choice(len(HOURS), n, p=HOUR_WEIGHTS)]


def sample_posts(cumulative: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Post row indices drawn from cumulative exposure weights."""
    return np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
