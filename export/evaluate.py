"""Offline evaluation: hit rate@5 on the held-out window, and simulated online hit rate@5.

For each sampled user active in the evaluation window, every ranker orders the whole catalogue at
the window's start, posts the user liked before are excluded, and the top 5 are scored twice:
- hit rate@5 (the course's metric): 1 if the user liked any of them during the window;
- simulated online hit rate@5: 1 − Π(1 − p_i) with p_i the world's ground-truth like
  probability of each shown post at that moment (the chance of at least one like).
Rankers: the two published models (scored by their model.cbm: parity proved it equal to the
ONNX within 1e-5, and onnxruntime's generic tree walk is ~30x slower than CatBoost's oblivious-tree
evaluator over a whole catalogue), popularity as known at the window start, random, and the
oracle (the ground truth itself, an upper bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
from catboost import CatBoostClassifier

from feedrank.errors import FeedrankError
from feedrank.export.windows import Windows
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.progress import progress_bar
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout

TOP_K = 5
BATCH_USERS = 16

# scores for a batch of users over the catalogue: (user ids [B]) -> float [B, P]
Ranker = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Row:
    ranker: str
    version: int | None
    hit_rate: float
    simulated_hit_rate: float


@dataclass(frozen=True)
class Evaluation:
    window: list[str]
    requested_at: str
    users_active: int
    users_evaluated: int
    seed: int
    rows: list[Row]
    replay: dict | None = None   # export/replay.py: the A/B an experiment should find
    # what was evaluated (versions' build fingerprints, sample sizes, seed): the same inputs
    # give the same evaluation, so `feedrank evaluate` shows the saved one instead of redoing it
    inputs: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        return cls(**data | {"rows": [Row(**row) for row in data["rows"]]})

    def row(self, ranker: str) -> Row:
        return next(r for r in self.rows if r.ranker == ranker)

    def oracle_lift_share(self, ranker: str) -> float:
        """Share of the oracle's lift over random that `ranker` reaches (simulated metric)."""
        base = self.row("random").simulated_hit_rate
        top = self.row("oracle").simulated_hit_rate - base
        return (self.row(ranker).simulated_hit_rate - base) / top if top > 0 else float("nan")


def window_activity(layout: WorldLayout, windows: Windows) -> tuple[np.ndarray, np.datetime64]:
    """Users active in the window, and the window's first moment of activity.

    Requests are ranked at that first moment rather than at midnight: worlds have no activity at
    night, and the hour of day changes what users like.
    """
    first_seen = duckdb.sql(
        "SELECT user_id, min(timestamp) AS first FROM read_parquet($glob)"
        " WHERE timestamp >= $a AND timestamp < $b GROUP BY user_id ORDER BY user_id",
        params={"glob": layout.feed_glob, "a": windows.eval_start,
                "b": windows.eval_end}).fetchnumpy()
    users = first_seen["user_id"]
    first = first_seen["first"].min() if len(users) else windows.eval_start
    return users, np.datetime64(first, "us")


def window_likes(layout: WorldLayout, windows: Windows, users: np.ndarray) -> np.ndarray:
    """(user_id, post_id) likes in the window, encoded as user_id * 2^32 + post_id."""
    likes = duckdb.sql(
        "SELECT DISTINCT user_id, post_id FROM read_parquet($glob) WHERE action = 'like'"
        " AND timestamp >= $a AND timestamp < $b AND list_contains($users, user_id)",
        params={"glob": layout.feed_glob, "a": windows.eval_start, "b": windows.eval_end,
                "users": users.tolist()}).fetchnumpy()
    return pair_codes(likes["user_id"], likes["post_id"])


def pair_codes(user_ids: np.ndarray, post_ids: np.ndarray) -> np.ndarray:
    return user_ids.astype(np.int64) << 32 | post_ids.astype(np.int64)


def liked_before_mask(online: OnlineFeatures, users: np.ndarray, catalogue: np.ndarray,
                      at: np.datetime64) -> np.ndarray:
    """bool [B, P]: the user liked the post before `at` (such posts are never recommended)."""
    before = [online.liked_before(int(u), at) for u in users]
    codes = pair_codes(np.repeat(users, [len(b) for b in before]),
                       np.concatenate(before + [np.empty(0, np.int64)]))
    return np.isin(pair_codes(users[:, None], catalogue[None, :]), codes)


def model_ranker(inputs: ModelInputs, model: CatBoostClassifier, at: np.datetime64,
                 catalogue: np.ndarray, threads: int) -> Ranker:
    # a model's own candidate order may differ from the catalogue's: align once
    order = np.argsort(inputs.post_ids)[np.searchsorted(np.sort(inputs.post_ids), catalogue)]

    def scores(users: np.ndarray) -> np.ndarray:
        matrix = np.concatenate([inputs.matrix(int(u), at) for u in users])
        scores = model.predict_proba(matrix, thread_count=threads)[:, 1]
        return scores.reshape(len(users), -1)[:, order]
    return scores


def popularity_ranker(online: OnlineFeatures, at: np.datetime64, catalogue: np.ndarray) -> Ranker:
    ranked = online.popular_posts(at)
    score = np.full(len(catalogue), -np.inf)
    known = np.isin(ranked, catalogue)
    score[np.searchsorted(catalogue, ranked[known])] = -np.arange(known.sum(), dtype=float)
    return lambda users: np.broadcast_to(score, (len(users), len(catalogue)))


def random_ranker(catalogue: np.ndarray, seed: int) -> Ranker:
    rng = np.random.default_rng(seed)
    return lambda users: rng.random((len(users), len(catalogue)))


def evaluate(world: Path, models: dict[str, tuple[int, Path]], windows: Windows, *,
             users: int, seed: int, threads: int, progress: bool = True) -> Evaluation:
    """`models`: name -> (version, version folder) of the published models to compare."""
    layout = WorldLayout(world)
    if not layout.ground_truth.exists():
        raise FeedrankError(f"{layout.ground_truth}: evaluation needs a generated world's "
                            "ground truth")
    active, at = window_activity(layout, windows)
    if len(active) == 0:
        raise FeedrankError("nobody was active in the evaluation window "
                            f"{windows.as_dict()['evaluation']}")
    # the snapshot a server started at the window's first moment would hold: nothing later
    online, truth = OnlineFeatures.load(world, cutoff=at), GroundTruth.load(world)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(active, min(users, len(active)), replace=False))
    inputs = {name: ModelInputs.from_version_dir(online, folder)
              for name, (_, folder) in models.items()}
    catalogue = np.sort(next(iter(inputs.values())).post_ids)
    truth_scores: Ranker = lambda u: truth.like_probability(  # noqa: E731
        u[:, None], catalogue[None, :], np.full((len(u), 1), at))
    rankers: dict[str, Ranker] = {
        name: model_ranker(inputs[name], CatBoostClassifier().load_model(str(folder / "model.cbm")),
                           at, catalogue, threads)
        for name, (_, folder) in models.items()}
    rankers |= {"popularity": popularity_ranker(online, at, catalogue),
                "random": random_ranker(catalogue, seed), "oracle": truth_scores}
    hits, simulated = measure(rankers, truth_scores, online, sample, catalogue, at,
                              window_likes(layout, windows, sample), progress)
    rows = [Row(name, models.get(name, (None,))[0], hits[name], simulated[name])
            for name in rankers]
    return Evaluation(window=windows.as_dict()["evaluation"], requested_at=str(at),
                      users_active=len(active), users_evaluated=len(sample), seed=seed, rows=rows)


def measure(rankers: dict[str, Ranker], truth_scores: Ranker, online: OnlineFeatures,
            sample: np.ndarray, catalogue: np.ndarray, at: np.datetime64, liked: np.ndarray,
            progress: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Mean hit rate@5 and simulated hit rate@5 of each ranker over the sampled users."""
    hits = {name: [] for name in rankers}
    simulated = {name: [] for name in rankers}
    with progress_bar() as bar:
        task = bar.add_task("evaluate", total=len(sample), visible=progress)
        for start in range(0, len(sample), BATCH_USERS):
            batch = sample[start:start + BATCH_USERS]
            truth_p = truth_scores(batch)
            seen = liked_before_mask(online, batch, catalogue, at)
            for name, ranker in rankers.items():
                scores = np.where(seen, -np.inf, ranker(batch))
                top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
                shown = pair_codes(batch[:, None], catalogue[top])
                hits[name].append(np.isin(shown, liked).any(axis=1))
                simulated[name].append(1 - np.prod(1 - np.take_along_axis(truth_p, top, 1), axis=1))
            bar.advance(task, len(batch))
    mean = lambda parts: float(np.concatenate(parts).mean())  # noqa: E731
    return ({n: mean(v) for n, v in hits.items()}, {n: mean(v) for n, v in simulated.items()})
