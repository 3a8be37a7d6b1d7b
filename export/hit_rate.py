"""The course's hit rate@5 on logged requests, for any world, generated or imported.

Requests are the logged ones: every session a user started in the held-out window (a view after
at least `horizon` without one) is a feed request at that moment. Each ranker orders the whole
catalogue for the user at that time, with every feature computed from events before it; posts
the user liked before are excluded; the top 5 are scored:
- hit rate@5 (the course's metric): 1 if the user liked any of the 5 within `horizon`;
- simulated hit rate@5 (generated worlds): 1 − Π(1 − p_i), p_i the ground truth's like
  probability of each post at that moment: what the user would do with the feed *we* show,
  where the logged hit needs the logging policy to have shown the post as well.
Rankers: a model (its probabilities from any source: `feedrank evaluate` scores published
versions through the server's rankers, ab/evaluation.py; the build its new model's own
evaluator, to choose the exposure term), the course's popularity (most liked posts known at the
start of the day), trending (most liked in a recent window, the window chosen on the validation
requests), random, and the oracle (the ground truth itself, where there is one).
Every rate has a 95% Wilson interval, and every ranker's difference from popularity and from
trending a paired 95% interval over the same requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from statistics import NormalDist

import duckdb
import numpy as np
from catboost import CatBoostClassifier

from feedrank.export.windows import Windows
from feedrank.features.exposure import Exposure
from feedrank.features.exposure import candidates as exposure_candidates
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.progress import progress_bar
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout

TOP_K = 5
BATCH = 16
LEVEL = 0.95
Z95 = NormalDist().inv_cdf(0.5 + LEVEL / 2)
HORIZON = timedelta(hours=1)
# candidate windows of the trending baseline, chosen on the validation requests
TRENDING_HOURS = (1, 3, 6, 24, 72, 168, 720)

# scores of the catalogue for a batch of requests: (user ids [B], times [B]) -> float [B, P]
Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]
# a model's P(like) for a batch of requests, in its inputs' post order: -> float [B, N]
Probabilities = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Requests:
    """Logged feed requests in time order, and what each user liked within the horizon."""

    user_ids: np.ndarray  # int64 [R]
    times: np.ndarray  # datetime64[us] [R]
    liked: np.ndarray  # int64 pair codes request << 32 | post_id
    total: int  # sessions in the window before sampling

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class Rate:
    mean: float
    low: float
    high: float

    @classmethod
    def wilson(cls, hits: np.ndarray) -> Rate:
        n, p = len(hits), float(np.mean(hits))
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
        return cls(p, max(0.0, float(centre - half)), min(1.0, float(centre + half)))

    @classmethod
    def paired(cls, a: np.ndarray, b: np.ndarray, z: float = Z95) -> Rate:
        """mean(a − b) over the same requests, with a normal interval (95% by default)."""
        d = np.asarray(a, float) - np.asarray(b, float)
        half = z * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        return cls(float(d.mean()), float(d.mean() - half), float(d.mean() + half))


def logged_requests(
    layout: WorldLayout, start: object, end: object, *, horizon: timedelta, limit: int, seed: int
) -> Requests:
    """Sessions started in [start, end) (a user's view after ≥ horizon without one), sampled
    to `limit`, with each user's likes in [request, request + horizon)."""
    sessions = duckdb.execute(
        """
        WITH views AS (
            SELECT user_id, timestamp, lag(timestamp) OVER (
                PARTITION BY user_id ORDER BY timestamp) AS previous
            FROM read_parquet($glob) WHERE action = 'view')
        SELECT user_id, timestamp FROM views
        WHERE timestamp >= $a AND timestamp < $b
          AND (previous IS NULL OR timestamp - previous >= $horizon)
        ORDER BY timestamp, user_id""",
        {"glob": layout.feed_glob, "a": start, "b": end, "horizon": horizon},
    ).fetchnumpy()
    total = len(sessions["user_id"])
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(total, min(limit, total), replace=False))
    users = np.asarray(sessions["user_id"], np.int64)[keep]
    times = np.asarray(sessions["timestamp"]).astype("datetime64[us]")[keep]
    likes = duckdb.execute(
        """
        SELECT r.i, l.post_id FROM (SELECT unnest($users) AS user_id, unnest($times) AS at,
                                           unnest($index) AS i) r
        JOIN read_parquet($glob) l ON l.user_id = r.user_id AND l.action = 'like'
         AND l.timestamp >= r.at AND l.timestamp < r.at + $horizon""",
        {
            "users": users.tolist(),
            "times": times.tolist(),
            "index": list(range(len(users))),
            "glob": layout.feed_glob,
            "horizon": horizon,
        },
    ).fetchnumpy()
    liked = np.asarray(likes["i"], np.int64) << 32 | np.asarray(likes["post_id"], np.int64)
    return Requests(users, times, liked, total)


def model_ranker(
    inputs: ModelInputs, probabilities: Probabilities, catalogue: np.ndarray
) -> Ranker:
    """A version's ranking: its model's probabilities, adjusted by its exposure term."""
    return exposure_rankers(inputs, probabilities, catalogue, {"model": inputs.exposure})["model"]


def catboost_probabilities(
    inputs: ModelInputs, model: CatBoostClassifier, threads: int
) -> Probabilities:
    """P(like) from a trained model not yet published (the build chooses its exposure term
    before it is exported): its own evaluator on the requests' full matrices."""

    def probabilities(users: np.ndarray, times: np.ndarray) -> np.ndarray:
        matrix = np.concatenate([inputs.matrix(int(u), t) for u, t in zip(users, times)])
        return model.predict_proba(matrix, thread_count=threads)[:, 1].reshape(len(users), -1)

    return probabilities


def popularity_ranker(online: OnlineFeatures, catalogue: np.ndarray) -> Ranker:
    """The course's baseline: most liked posts known at the start of the request's day."""

    def scores(users: np.ndarray, times: np.ndarray) -> np.ndarray:
        out = np.full((len(users), len(catalogue)), -np.inf)
        for i, at in enumerate(times):
            ranked = online.history.most_liked(catalogue, np.datetime64(at, "D"))
            out[i, np.searchsorted(catalogue, ranked)] = -np.arange(ranked.size)
        return out

    return scores


def trending_ranker(online: OnlineFeatures, catalogue: np.ndarray, hours: int) -> Ranker:
    """Most liked posts in the `hours` before the request (all-time likes break ties)."""
    window = np.timedelta64(hours, "h")

    def scores(users: np.ndarray, times: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                online.history.post_likes_between(catalogue, at - window, at)
                + online.history.post_likes_between(catalogue, None, at) * 1e-6
                for at in times
            ]
        )

    return scores


def random_ranker(catalogue: np.ndarray, seed: int) -> Ranker:
    rng = np.random.default_rng(seed)
    return lambda users, times: rng.random((len(users), len(catalogue)))


def oracle_ranker(truth: GroundTruth, catalogue: np.ndarray) -> Ranker:
    return lambda users, times: truth.like_probability(
        users[:, None], catalogue[None, :], times[:, None]
    )


def choose_trending(
    layout: WorldLayout,
    online: OnlineFeatures,
    catalogue: np.ndarray,
    windows: Windows,
    horizon: timedelta,
    requests: int,
    seed: int,
) -> int:
    """The trending window with the best hit rate@5 on the validation window's sessions."""
    valid = logged_requests(
        layout, windows.valid_start, windows.eval_start, horizon=horizon, limit=requests, seed=seed
    )
    if not len(valid):
        return TRENDING_HOURS[-1]
    rankers = {h: trending_ranker(online, catalogue, h) for h in TRENDING_HOURS}
    hits, _ = measure(rankers, online, valid, catalogue, None, progress=False)
    return max(TRENDING_HOURS, key=lambda h: (hits[h].mean(), -h))


def liked_before_mask(
    online: OnlineFeatures, users: np.ndarray, times: np.ndarray, catalogue: np.ndarray
) -> np.ndarray:
    """bool [B, P]: the user liked the post before the request (never recommended again)."""
    mask = np.zeros((len(users), len(catalogue)), bool)
    for i, (user, at) in enumerate(zip(users, times)):
        liked = online.liked_before(int(user), at)
        mask[i, np.searchsorted(catalogue, liked[np.isin(liked, catalogue)])] = True
    return mask


def measure(
    rankers: dict,
    online: OnlineFeatures,
    requests: Requests,
    catalogue: np.ndarray,
    truth: GroundTruth | None,
    progress: bool,
) -> tuple[dict, dict]:
    """Per ranker, per request: a hit (bool) and the simulated hit rate (with a ground truth)."""
    hits = {name: np.zeros(len(requests), bool) for name in rankers}
    simulated = {name: np.zeros(len(requests)) for name in rankers}
    with progress_bar() as bar:
        task = bar.add_task("evaluate", total=len(requests), visible=progress)
        for start in range(0, len(requests), BATCH):
            index = np.arange(start, min(start + BATCH, len(requests)))
            users, times = requests.user_ids[index], requests.times[index]
            seen = liked_before_mask(online, users, times, catalogue)
            truth_p = (
                None
                if truth is None
                else truth.like_probability(users[:, None], catalogue[None, :], times[:, None])
            )
            for name, ranker in rankers.items():
                scores = np.where(seen, -np.inf, ranker(users, times))
                top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
                shown = index[:, None] << 32 | catalogue[top]
                hits[name][index] = np.isin(shown, requests.liked).any(axis=1)
                if truth_p is not None:
                    p = np.take_along_axis(truth_p, top, 1)
                    simulated[name][index] = 1 - np.prod(1 - p, axis=1)
            bar.advance(task, len(index))
    return hits, simulated


def choose_exposure(
    world: Path,
    inputs: ModelInputs,
    model: CatBoostClassifier,
    windows: Windows,
    *,
    requests: int,
    seed: int,
    threads: int,
    horizon: timedelta = HORIZON,
) -> tuple[Exposure, dict]:
    """The exposure term (features/exposure.py) with the best hit rate@5 on the validation
    window's logged sessions; pure preference unless the best beats it significantly: the
    paired interval of the difference above 0 at 95% for the whole family of candidates
    (Bonferroni), since the best of many terms beats preference by chance far more often than
    one term would (4 hits against 0 in 1,000 sessions, say). Returns it and what was
    measured."""
    layout = WorldLayout(world)
    valid = logged_requests(
        layout, windows.valid_start, windows.eval_start, horizon=horizon, limit=requests, seed=seed
    )
    if not len(valid):
        return Exposure(), {"requests": 0}
    catalogue = np.sort(inputs.post_ids)
    options = {_label(e): e for e in exposure_candidates()}
    probabilities = catboost_probabilities(inputs, model, threads)
    hits, _ = measure(
        exposure_rankers(inputs, probabilities, catalogue, options),
        inputs.online,
        valid,
        catalogue,
        None,
        progress=False,
    )
    pure = _label(Exposure())
    best = max(options, key=lambda name: hits[name].mean())
    z = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2 / (len(options) - 1))  # Bonferroni
    gain = Rate.paired(hits[best], hits[pure], z=z)
    chosen = best if gain.low > 0 else pure
    return options[chosen], {
        "requests": len(valid),
        "chosen": chosen,
        "hit_rates": {n: float(h.mean()) for n, h in hits.items()},
        "gain_of_best": asdict(gain),
        "z": z,
    }


def exposure_rankers(
    inputs: ModelInputs,
    probabilities: Probabilities,
    catalogue: np.ndarray,
    options: dict[str, Exposure],
) -> dict[str, Ranker]:
    """One ranker per exposure term, sharing the model's probabilities of each batch."""
    order = np.argsort(inputs.post_ids)[np.searchsorted(np.sort(inputs.post_ids), catalogue)]
    last: dict = {}

    def shared(users: np.ndarray, times: np.ndarray) -> np.ndarray:
        key = (users.tobytes(), times.tobytes())
        if last.get("key") != key:
            last.update(key=key, value=probabilities(users, times))
        return last["value"]

    def ranker(exposure: Exposure) -> Ranker:
        def scores(users: np.ndarray, times: np.ndarray) -> np.ndarray:
            p = shared(users, times)
            return np.stack(
                [inputs.ranking_scores(row, at, exposure) for row, at in zip(p, times)]
            )[:, order]

        return scores

    return {name: ranker(e) for name, e in options.items()}


def _label(exposure: Exposure) -> str:
    return f"{exposure.column}^{exposure.alpha:g}" if exposure.active else "preference"
