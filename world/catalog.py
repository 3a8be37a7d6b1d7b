"""The course's published marginals: the targets the synthetic world is drawn to match.

Figures from /work/shared/reference/course-data.md (students' public notebooks of the course).
"""

from __future__ import annotations

import numpy as np

START = np.datetime64("2021-10-01", "D")
END = np.datetime64("2021-12-29", "D")  # last day with activity (inclusive)
FIRST_HOUR, LAST_HOUR = 6, 23  # no activity between 00:00 and 05:59

COURSE_USERS = 163_205
COURSE_POSTS = 7_023
USER_ID_SPAN = (200, 168_552)  # course user ids have gaps
POST_ID_SPAN = (1, 7_319)

TOPIC_COUNTS = {
    "movie": 3000,
    "covid": 1799,
    "business": 510,
    "sport": 510,
    "politics": 417,
    "tech": 401,
    "entertainment": 386,
}
TOPICS = tuple(TOPIC_COUNTS)

COUNTRY_COUNTS = {
    "Russia": 143_035,
    "Ukraine": 8_273,
    "Belarus": 3_293,
    "Kazakhstan": 3_172,
    "Turkey": 1_606,
    "Finland": 1_599,
    "Azerbaijan": 1_542,
    "Estonia": 178,
    "Latvia": 175,
    "Cyprus": 170,
    "Switzerland": 162,
}
COUNTRIES = tuple(COUNTRY_COUNTS)
CITY_COUNT = 3_915
MOSCOW_USERS = 21_874

GENDER1_SHARE = 89_980 / COURSE_USERS
ANDROID_SHARE = 105_972 / COURSE_USERS
ADS_SHARE = 101_685 / COURSE_USERS
EXP_GROUPS = 5
# age = 14 + Gamma(shape, scale): mean 27.2, sd 10.2, median ~24, quartiles ~19/33, mode ~20
AGE_MIN, AGE_MAX = 14, 95
AGE_GAMMA_SHAPE, AGE_GAMMA_SCALE = 1.675, 7.88

LIKE_RATE = 0.12  # mean target over views
NEVER_SHOWN_SHARE = 192 / COURSE_POSTS  # posts that never appear in feed_data
FEED_ROWS_PER_VIEW = 76_892_800 / 69_500_000  # ~10.7% of course rows are likes

# sub-themes inside each topic: what the text is about beyond its topic label
SUBTHEMES: dict[str, tuple[str, ...]] = {
    "movie": (
        "horror",
        "comedy",
        "drama",
        "action",
        "scifi",
        "romance",
        "animation",
        "documentary",
    ),
    "covid": ("vaccines", "lockdown", "hospitals", "remote_life", "masks_tests", "recovery"),
    "business": ("markets", "energy", "banking", "retail", "aviation"),
    "sport": ("football", "tennis", "athletics", "rugby", "motorsport"),
    "politics": ("elections", "immigration", "taxes", "healthcare", "foreign_policy"),
    "tech": ("phones", "games", "security", "internet", "gadgets"),
    "entertainment": ("music", "awards", "television", "theatre", "celebrity"),
}
# (topic, sub-theme) pairs in a fixed order: the sub-theme index used everywhere
SUBTHEME_INDEX: tuple[tuple[str, str], ...] = tuple(
    (topic, sub) for topic in TOPICS for sub in SUBTHEMES[topic]
)
# share of posts with a positive / negative tone (the rest are neutral), by topic or sub-theme
SENTIMENT_SHARES = {
    "movie": (0.55, 0.45),
    "vaccines": (0.7, 0.1),
    "recovery": (0.8, 0.05),
    "hospitals": (0.05, 0.8),
    "lockdown": (0.1, 0.7),
    "remote_life": (0.3, 0.4),
    "masks_tests": (0.3, 0.4),
}


def scaled_counts(counts: dict[str, int], total: int) -> np.ndarray:
    """Split `total` in the proportions of `counts` (largest remainders), every share >= 0."""
    weights = np.array(list(counts.values()), dtype=np.float64)
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    remainder = total - out.sum()
    out[np.argsort(-(exact - out), kind="stable")[:remainder]] += 1
    return out
