"""`feedrank world generate`: a seeded synthetic social network with the course's schema.

Users and posts are drawn first, then the ground truth (their hidden tastes and qualities), then
the feed day by day: the logging policy picks who sees what, the ground truth decides every like.
Each day is one chunk simulated with vectorised numpy and written to its own Parquet file, so
memory is bounded by one day's rows whatever the total size. Every random stream comes from one
`SeedSequence(seed)`, so the same arguments and seed give identical tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from feedrank.errors import FeedrankError
from feedrank.progress import progress_bar
from feedrank.world import catalog, policy, schema
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout
from feedrank.world.population import make_users
from feedrank.world.staging import staged
from feedrank.world.texts import make_fresh_posts, make_posts

# ~4.5 million feed rows (~570 views per post, ~25 per user): generated in seconds here
DEFAULT_VIEWS = 4_000_000
GENERATOR_VERSION = 1
CALIBRATION_VIEWS = 400_000
LIKE_DELAY_S = (2, 170)  # a like follows its view by seconds to a couple of minutes
HELD_BACK_SHARE = 0.1  # posts written but never published, per catalogue post


def generate_world(
    out: Path,
    *,
    users: int = catalog.COURSE_USERS,
    posts: int = catalog.COURSE_POSTS,
    views: int = DEFAULT_VIEWS,
    held_back: int | None = None,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
) -> None:
    """Write a generated world to `out` (built in a sibling temp dir, then renamed into place).
    `held_back` posts (a tenth of `posts` by default) are written but never published."""
    if min(users, posts, views) < 1:
        raise FeedrankError("--users, --posts and --views must be positive")
    if held_back is None:
        held_back = round(posts * HELD_BACK_SHARE)
    if held_back < 0:
        raise FeedrankError("--held-back-posts must be >= 0")
    with staged(out, force=force) as tmp:
        _write(WorldLayout(tmp), users, posts, views, held_back, seed, progress)


def _write(
    layout: WorldLayout,
    n_users: int,
    n_posts: int,
    views: int,
    held_back: int,
    seed: int,
    progress: bool,
) -> None:
    # the held-back posts have the last stream: the published world is the same with or without
    streams = np.random.SeedSequence(seed).spawn(6)
    rng_users, rng_posts, rng_truth, rng_policy = (np.random.default_rng(s) for s in streams[:4])
    day_seeds = streams[4].spawn(len(policy.days()))
    users = make_users(n_users, rng_users)
    posts = make_posts(n_posts, rng_posts)
    truth = GroundTruth.draw(users, posts, rng_truth)
    exposure = np.cumsum(policy.exposure_weights(truth.tables["quality"], rng_policy))
    counts = policy.view_counts(n_users, views, rng_policy)
    truth = _calibrate(truth, counts, exposure, rng_policy)

    layout.feed_dir.mkdir(parents=True)
    schema.write(users, schema.USERS, layout.users)
    schema.write(posts, schema.POSTS, layout.posts)
    truth.save(layout.ground_truth)
    rng_held_back = np.random.default_rng(streams[5])
    fresh = make_fresh_posts(
        held_back, int(posts["post_id"].max()), set(posts["text"]), rng_held_back
    )
    GroundTruth.save_held_back(fresh, layout.ground_truth, rng_held_back)
    rows = 0
    with progress_bar(transient=not progress) as bar:
        task = bar.add_task("feed_data", total=len(day_seeds), visible=progress)
        for d, day in enumerate(policy.days()):
            table = simulate_day(
                day, counts[:, d], truth, exposure, np.random.default_rng(day_seeds[d])
            )
            pq.write_table(table, layout.feed_dir / f"{day}.parquet", compression="zstd")
            rows += table.num_rows
            bar.advance(task)
    manifest = {
        "kind": "generated",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "users": n_users,
        "posts": n_posts,
        "views": int(counts.sum()),
        "feed_rows": rows,
        "start": str(catalog.START),
        "end": str(catalog.END),
        "ground_truth": True,
        "held_back_posts": held_back,
        "like_rate_target": catalog.LIKE_RATE,
    }
    layout.manifest.write_text(json.dumps(manifest, indent=2) + "\n")


def _calibrate(
    truth: GroundTruth, counts: np.ndarray, exposure: np.ndarray, rng: np.random.Generator
) -> GroundTruth:
    """Set the base rate so that the feed's like rate per view matches the course (~0.12)."""
    per_user = counts.sum(axis=1)
    n = CALIBRATION_VIEWS
    u = rng.choice(len(per_user), n, p=per_user / per_user.sum())
    day = rng.choice(counts.shape[1], n, p=policy.day_weights())
    month = policy.days()[day].astype("datetime64[M]").astype(np.int64) % 12 + 1
    p = policy.sample_posts(exposure, n, rng)
    return truth.calibrated(u, p, policy.sample_hours(n, rng), month, catalog.LIKE_RATE)


def simulate_day(
    day: np.datetime64,
    counts: np.ndarray,
    truth: GroundTruth,
    exposure: np.ndarray,
    rng: np.random.Generator,
) -> pa.Table:
    """One day of feed_data: every view, and a `like` row shortly after each liked view."""
    u = np.repeat(np.arange(len(counts)), counts)
    n = len(u)
    hour = policy.sample_hours(n, rng)
    seconds = hour * 3600 + rng.integers(0, 3600, n)
    p = policy.sample_posts(exposure, n, rng)
    month = int(day.astype("datetime64[M]").astype(np.int64) % 12 + 1)
    liked = rng.random(n) < truth.probability_at(u, p, hour, np.full(n, month))
    delay = np.clip(2 + rng.exponential(30, n), *LIKE_DELAY_S).astype(np.int64)
    like_seconds = np.minimum(seconds + delay, 24 * 3600 - 1)[liked]
    all_seconds = np.concatenate([seconds, like_seconds])
    is_like = np.concatenate([np.zeros(n, bool), np.ones(int(liked.sum()), bool)])
    order = np.lexsort((is_like, all_seconds))
    start = day.astype("datetime64[s]")
    target = pa.array(
        np.concatenate([liked, np.zeros(len(like_seconds), bool)])[order].astype(np.int8),
        mask=is_like[order],
    )
    return pa.table(
        {
            "timestamp": (start + all_seconds[order]).astype("datetime64[us]"),
            "user_id": truth.user_ids[np.concatenate([u, u[liked]])[order]],
            "post_id": truth.post_ids[np.concatenate([p, p[liked]])[order]],
            "action": pa.DictionaryArray.from_arrays(
                pa.array(is_like[order].astype(np.int8)), pa.array(["view", "like"])
            ).cast(pa.string()),
            "target": target,
        },
        schema=schema.FEED,
    )
