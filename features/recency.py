"""A post's activity just before a moment: what the feed is showing and what is liked right now.

News ages in hours: on a real news log the posts liked in the last hour predict the next clicks
far better than all-time counts. Shares (a post's part of all likes or views in the window,
per mille) rather than counts, so the values mean the same at 03:00 and at 21:00 and as the
audience grows. The model's columns are computed as of the start of the request's hour (`STEP`):
every request of an hour shares them, so they are post columns to the ranking fast path, which
builds one ranker per hour. The exposure term of the ranking (features/exposure.py) reads them
as of the request's minute.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from feedrank.features.history import History

WINDOW_HOURS = (1, 24)
STEP = np.timedelta64(1, "h")
CAP_HOURS = 720.0  # "not seen for a month or more"
CTR_WEIGHT = 20.0  # views of smoothing toward the window's overall like rate
HOUR_MS = 3_600_000

# a post's share of the likes or views in the last h hours; any h for the exposure term
SHARE = re.compile(r"recent_(like|view)_share_(\d+)h")
COLUMNS = (
    *(f"recent_{a}_share_{h}h" for a in ("like", "view") for h in WINDOW_HOURS),
    "recent_like_rate_24h",
    "post_hours_since_view",
    "post_hours_since_first",
)


def as_of(times: np.ndarray, step: np.timedelta64 = STEP) -> np.ndarray:
    """The moment a block is computed for: the start of each time's `step` (hour, minute)."""
    unit = np.datetime_data(step)[0]
    return np.asarray(times).astype(f"datetime64[{unit}]").astype("datetime64[us]")


def recency_block(
    history: History,
    posts: np.ndarray,
    times: np.ndarray,
    step: np.timedelta64 = STEP,
    columns: tuple[str, ...] = COLUMNS,
) -> dict[str, np.ndarray]:
    """`columns` (of COLUMNS, or a share over any `h` hours) for parallel (post, time) arrays
    (times broadcast): only the searches they need, which for a whole catalogue at a new minute
    is most of the cost."""
    t = np.broadcast_to(history.to_ms(as_of(times, step)), posts.shape)
    window = functools.cache(lambda action, hours: _window(history, action, posts, t, hours))
    out = {}
    for name in columns:
        if share := SHARE.fullmatch(name):
            count, total = window(f"{share[1]}s", int(share[2]))
            out[name] = 1000.0 * count / np.maximum(total, 1)
    if "recent_like_rate_24h" in columns:
        (likes, all_likes), (views, all_views) = window("likes", 24), window("views", 24)
        prior = all_likes / np.maximum(all_views, 1)
        out["recent_like_rate_24h"] = (likes + CTR_WEIGHT * prior) / (views + CTR_WEIGHT)
    viewed = history.post_index("views")
    if "post_hours_since_view" in columns:
        out["post_hours_since_view"] = _hours_since(viewed.last_before(posts, t), t)
    if "post_hours_since_first" in columns:
        out["post_hours_since_first"] = _hours_since(viewed.first_before(posts, t), t)
    return out


def _window(
    history: History, action: str, posts: np.ndarray, t: np.ndarray, hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each post's events of `action` in the `hours` before t, and all posts' together."""
    index, start = history.post_index(action), t - hours * HOUR_MS
    count = index.count_before(posts, t) - index.count_before(posts, start)
    return count, history.total_before(action, t) - history.total_before(action, start)


def _hours_since(event_ms: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    return np.where(event_ms >= 0, np.minimum((t_ms - event_ms) / HOUR_MS, CAP_HOURS), CAP_HOURS)
