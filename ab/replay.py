"""The offline replay of an A/B experiment: what `feedrank ab simulate` should find, predicted.

The one-shot evaluation (evaluation.py) ranks each user once. An experiment is a loop: users come
back over days, and a post they liked leaves their feed, so later feeds are drawn from deeper in
each model's ranking. The replay runs the simulation's own traffic (`Traffic.plan`: the same
users, request times and random numbers for a seed) through every model in process, with no
server: each request is scored over the whole catalogue by the version's declared ranker, as
the server scores it (server/scoring.py), posts the user liked before are excluded (in
the world's feed, or earlier in the replay), and the reaction is drawn from the ground truth with
the request's own random numbers.

Every model meets the same users at the same moments with the same random numbers, so the
differences are paired per user (`stats.paired`) and their intervals are narrow. An A/B test
splits the users and sees each under one model only: its estimate should differ from the
replay's by no more than the two estimates' sampling errors (`ab/prediction.py`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feedrank.ab import stats
from feedrank.ab.expected import EXPECTED_HIT, EXPECTED_LIKES, EXPECTED_METRICS
from feedrank.ab.report import METRICS, user_values
from feedrank.features.online import OnlineFeatures
from feedrank.progress import progress_bar
from feedrank.server.ranking import rank
from feedrank.server.scoring import VersionScorer
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.simulated_users import SLOTS, Traffic

BATCH = 16  # requests scored per call, as a dynamic batch of the server
# the A/B report's metrics, and those only a simulation knows (ab/expected.py)
REPLAY_METRICS = METRICS | EXPECTED_METRICS


@dataclass(frozen=True)
class Replay:
    days: list[str]
    users: int  # sampled users who asked for a feed
    requests: int
    seed: int
    means: dict[str, dict[str, float]]  # model -> metric -> mean over users
    differences: dict[str, dict[str, dict]]  # model -> metric -> paired t-test vs control

    def as_dict(self) -> dict:
        return asdict(self)


def replay(
    world: Path,
    models: dict[str, Path],
    days: np.ndarray,
    *,
    users: int,
    seed: int,
    threads: int,
    control: str = "control",
    progress: bool = True,
) -> Replay:
    """`models`: name -> version folder; `days`: datetime64[D] the experiment runs on."""
    truth = GroundTruth.load(world)
    traffic = Traffic.plan(truth.user_ids, users, days, seed)
    online = OnlineFeatures.load(world)  # the server's snapshot: point-in-time history
    users_of = {}
    for name, folder in models.items():
        ranked = candidates(online, folder, traffic.requests, threads, progress, name)
        users_of[name] = per_user(run_loop(truth, traffic, ranked))
    base = users_of[control]
    means = {
        name: {m: float(frame[m].mean()) for m in REPLAY_METRICS}
        for name, frame in users_of.items()
    }
    differences = {
        name: {
            m: asdict(stats.paired(base[m].to_numpy(), frame[m].to_numpy())) for m in REPLAY_METRICS
        }
        for name, frame in users_of.items()
        if name != control
    }
    return Replay(
        days=[str(d) for d in days],
        users=len(base),
        requests=len(traffic.requests),
        seed=seed,
        means=means,
        differences=differences,
    )


def candidates(
    online: OnlineFeatures,
    version_dir: Path,
    requests: pd.DataFrame,
    threads: int,
    progress: bool,
    name: str,
) -> list[np.ndarray]:
    """Per request, the version's best posts, scored by its declared ranker as the server
    scores them (`ranked_lists`)."""
    scorer = VersionScorer(online, version_dir, threads=threads)
    inputs = scorer.inputs

    def scores(users: np.ndarray, times: np.ndarray) -> np.ndarray:
        probabilities = scorer.probabilities(users, times)
        return np.stack([inputs.ranking_scores(p, at) for p, at in zip(probabilities, times)])

    return ranked_lists(online, requests, inputs.post_ids, scores, progress, name)


def ranked_lists(
    online: OnlineFeatures,
    requests: pd.DataFrame,
    post_ids: np.ndarray,
    scores: Callable[[np.ndarray, np.ndarray], np.ndarray],
    progress: bool,
    name: str,
) -> list[np.ndarray]:
    """Per request, the best of `post_ids` by `scores` (users [B], times [B] -> [B, posts]) in
    the server's order (`server.ranking.rank`), as many as the feed could still need:
    SLOTS × (the user's earlier requests + 1), since each earlier feed removes at most SLOTS
    (the ones liked). Posts the user liked in the world before the request are left out
    already."""
    users = requests["user_id"].to_numpy(np.int64)
    times = requests["requested_time"].to_numpy("datetime64[us]")
    depth = SLOTS * (requests.groupby("user_id").cumcount().to_numpy() + 1)
    ranked: list[np.ndarray] = []
    with progress_bar() as bar:
        task = bar.add_task(f"replay {name}", total=len(requests), visible=progress)
        for start in range(0, len(requests), BATCH):
            batch = slice(start, min(start + BATCH, len(requests)))
            for i, row in enumerate(scores(users[batch], times[batch]), start):
                liked = online.liked_before(int(users[i]), times[i])
                ranked.append(rank(post_ids, row, liked, depth[i]))
            bar.advance(task, batch.stop - start)
    return ranked


def run_loop(truth: GroundTruth, traffic: Traffic, ranked: list[np.ndarray]) -> pd.DataFrame:
    """Walk the requests in time order: show the first SLOTS posts the user has not liked, draw
    the reaction. One row per request: user_id, shown (post ids), likes, hits (any like), the
    expected hit rate and the expected likes."""
    requests = traffic.requests
    users = requests["user_id"].to_numpy(np.int64)
    times = requests["requested_time"].to_numpy("datetime64[us]")
    # post -> when the user liked it: a like seconds after the view is not yet known to a
    # request in between (the server excludes likes timestamped before the request)
    liked: dict[int, dict[int, np.datetime64]] = defaultdict(dict)
    shown_lists, outcomes = [], np.zeros((len(requests), 4))  # the columns returned below
    for i, (user, at, posts) in enumerate(zip(users.tolist(), times, ranked, strict=True)):
        known = {post for post, when in liked[user].items() if when < at}
        shown = np.array([p for p in posts.tolist() if p not in known][:SLOTS], np.int64)
        shown_lists.append(shown)
        if shown.size:
            hits = traffic.reactions.react(truth, i, user, shown, at, set(liked[user]))
            liked[user].update(
                zip(shown[hits].tolist(), traffic.reactions.like_times(i, at, hits), strict=True)
            )
            p = truth.like_probability(user, shown, at)
            outcomes[i] = hits.sum(), hits.any(), 1 - np.prod(1 - p), p.sum()
    return pd.DataFrame(
        {
            "user_id": users,
            "shown": shown_lists,
            "likes": outcomes[:, 0],
            "hits": outcomes[:, 1],
            EXPECTED_HIT: outcomes[:, 2],
            EXPECTED_LIKES: outcomes[:, 3],
        }
    )


def per_user(exposures: pd.DataFrame) -> pd.DataFrame:
    """The A/B attribution's per-user sums (exposures, hits, shown, liked_shown, likes), the
    mean expected hit rate and the expected likes, then every metric per user
    (`ab.report.user_values`)."""
    sums = (
        exposures.assign(exposures=1, shown=exposures["shown"].map(len))
        .groupby("user_id")[["exposures", "hits", "shown", "likes", EXPECTED_HIT, EXPECTED_LIKES]]
        .sum()
    )
    sums["liked_shown"] = sums["likes"]
    sums[EXPECTED_HIT] = sums[EXPECTED_HIT] / sums["exposures"]
    return user_values(sums)
