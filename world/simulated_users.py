"""The simulated users of `feedrank ab simulate`: who asks for a feed when, and what they like.

A population is a seeded sample of the world's users, each with a heavy-tailed activity level (as
in the world's own feed, `policy.ACTIVITY_SIGMA`). Each user requests feeds on each simulated day
as a Poisson count around their activity, at hours drawn from the world's daily rhythm. Every
post shown is liked with the world's ground-truth probability at the request moment; a user likes
a post at most once (a later showing of a post they already liked is a view without a like).
The result is the world's own event schema (feed_data): view rows with `target` and like rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedrank.world import policy
from feedrank.world.generate import LIKE_DELAY_S
from feedrank.world.ground_truth import GroundTruth

REQUESTS_PER_DAY = 1.5  # mean feed requests per simulated user and day
SLOTS = 5  # posts a simulated user asks for per feed (the `limit`)


@dataclass(frozen=True)
class Population:
    user_ids: np.ndarray  # int64
    activity: np.ndarray  # expected requests per day, mean REQUESTS_PER_DAY

    @classmethod
    def sample(
        cls,
        world_user_ids: np.ndarray,
        n: int,
        rng: np.random.Generator,
        requests_per_day: float = REQUESTS_PER_DAY,
    ) -> Population:
        """`n` distinct users of the world (all of them if it has fewer)."""
        ids = np.sort(
            rng.choice(
                np.asarray(world_user_ids, np.int64), min(n, len(world_user_ids)), replace=False
            )
        )
        activity = rng.lognormal(0, policy.ACTIVITY_SIGMA, len(ids))
        return cls(ids, activity / activity.mean() * requests_per_day)

    def requests(self, days: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Feed requests over `days` (datetime64[D]): user_id, requested_time; in time order."""
        weekday = (np.asarray(days, "datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01: Thu
        counts = rng.poisson(self.activity[:, None] * policy.WEEKDAY_FACTOR[weekday][None, :])
        user_index, day_index = np.nonzero(counts)
        repeat = counts[user_index, day_index]
        users = np.repeat(self.user_ids[user_index], repeat)
        day = np.repeat(np.asarray(days, "datetime64[D]")[day_index], repeat)
        seconds = policy.sample_hours(len(users), rng) * 3600 + rng.integers(0, 3600, len(users))
        times = day.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
        order = np.argsort(times, kind="stable")
        return pd.DataFrame(
            {"user_id": users[order], "requested_time": times[order].astype("datetime64[us]")}
        )


def draw_likes(truth: GroundTruth, views: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """For view rows (user_id, post_id, timestamp), whether each was liked (bool per row).

    Draws are independent Bernoulli(p_true); only the first successful draw per (user, post) in
    time order is a like, which is a sequential user who cannot like a post twice.
    """
    p = truth.like_probability(
        views["user_id"].to_numpy(),
        views["post_id"].to_numpy(),
        views["timestamp"].to_numpy("datetime64[us]"),
    )
    drawn = rng.random(len(p)) < p
    order = np.lexsort(
        (views["timestamp"].to_numpy(), views["post_id"].to_numpy(), views["user_id"].to_numpy())
    )
    keys = views[["user_id", "post_id"]].to_numpy()[order]
    new_pair = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]
    hits = drawn[order].astype(np.int64)
    before = np.cumsum(hits) - hits  # likes earlier in the array
    pair_start = np.maximum.accumulate(np.where(new_pair, np.arange(len(hits)), 0))
    first = drawn[order] & (before - before[pair_start] == 0)  # none earlier for this pair
    liked = np.empty(len(p), bool)
    liked[order] = first
    return liked


@dataclass(frozen=True)
class Reactions:
    """Each request's random numbers, drawn up front: the closed-loop simulation reacts to
    answers as they arrive (in any order across users), yet a seed fixes every like."""

    uniforms: np.ndarray  # [request, slot] in [0, 1): liked when below the true probability
    delays_s: np.ndarray  # [request, slot]: seconds from the view to the like

    @classmethod
    def draw(cls, requests: int, slots: int, rng: np.random.Generator) -> Reactions:
        return cls(
            rng.random((requests, slots)),
            rng.integers(LIKE_DELAY_S[0], LIKE_DELAY_S[1] + 1, (requests, slots)),
        )

    def react(
        self,
        truth: GroundTruth,
        request: int,
        user_id: int,
        shown: np.ndarray,
        at: np.datetime64,
        already_liked: set[int],
    ) -> np.ndarray:
        """Which shown posts the user likes: Bernoulli(p_true) at the request moment, and never
        a post they liked before (the server should not show one again; if it does, it is a
        view without a like)."""
        p = truth.like_probability(user_id, shown, at)
        fresh = np.array([post not in already_liked for post in shown.tolist()], bool)
        return (self.uniforms[request, : len(shown)] < p) & fresh

    def like_times(self, request: int, at: np.datetime64, liked: np.ndarray) -> np.ndarray:
        delays = self.delays_s[request, : len(liked)][liked]
        # numpy's stubs lack np.datetime64(<datetime64>, unit), which converts the unit
        return np.datetime64(at, "us") + delays.astype("timedelta64[s]")  # type: ignore[call-overload]


def feed_events(views: pd.DataFrame, liked: np.ndarray, like_delay_s: np.ndarray) -> pd.DataFrame:
    """feed_data rows: one `view` per shown post (target = liked) and one `like` after it,
    `like_delay_s` seconds later (read where liked)."""
    view_rows = pd.DataFrame(
        {
            "timestamp": views["timestamp"].to_numpy("datetime64[us]"),
            "user_id": views["user_id"].to_numpy(np.int64),
            "post_id": views["post_id"].to_numpy(np.int64),
            "action": "view",
            "target": liked.astype(np.int8),
        }
    )
    likes = view_rows[liked].assign(action="like", target=None)
    likes["timestamp"] = likes["timestamp"] + pd.to_timedelta(like_delay_s[liked], unit="s")
    rows = pd.concat([view_rows, likes], ignore_index=True)
    rows["target"] = rows["target"].astype("Int8")
    return rows.sort_values(["timestamp", "user_id", "post_id"], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class Traffic:
    """An experiment's traffic, fixed by a seed: who asks for a feed when, and the random
    numbers of their reactions. `ab simulate` sends it to a server, the offline replay
    (ab/replay.py) to the models in process: one seed, the same users and the same draws."""

    requests: pd.DataFrame  # user_id, requested_time; in time order
    reactions: Reactions

    @classmethod
    def plan(
        cls,
        world_user_ids: np.ndarray,
        users: int,
        days: np.ndarray,
        seed: int,
        *,
        requests_per_day: float = REQUESTS_PER_DAY,
        slots: int = SLOTS,
    ) -> Traffic:
        streams = experiment_streams(seed)
        population = Population.sample(world_user_ids, users, streams[0], requests_per_day)
        requests = population.requests(days, streams[1])
        return cls(requests, Reactions.draw(len(requests), slots, streams[3]))


def experiment_streams(seed: int) -> list[np.random.Generator]:
    """A seed's independent random streams: population, requests, the logging-bug drill of
    `ab simulate --drop-share`, reactions, the releases of `--new-posts-per-day` (fixed
    positions: a seed keeps its meaning)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
