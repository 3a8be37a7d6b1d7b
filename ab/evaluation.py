"""`feedrank evaluate`: the published versions against the baselines on the held-out window.

The course's hit rate@5 of each ranker on the logged held-out requests (export/hit_rate.py),
with the published versions scored exactly as the feed scores them: their declared rankers
through the server's backends (server/scoring.py), not a separate evaluator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from feedrank.errors import FeedrankError
from feedrank.export.hit_rate import (
    HORIZON,
    Ranker,
    Rate,
    choose_trending,
    logged_requests,
    measure,
    model_ranker,
    oracle_ranker,
    popularity_ranker,
    random_ranker,
    trending_ranker,
)
from feedrank.export.windows import Windows
from feedrank.features.online import OnlineFeatures
from feedrank.server.scoring import VersionScorer
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout


@dataclass(frozen=True)
class Row:
    ranker: str
    version: int | None
    hit_rate: Rate
    vs_popularity: Rate
    vs_trending: Rate
    simulated_hit_rate: float | None = None


@dataclass(frozen=True)
class Evaluation:
    windows: dict
    horizon_hours: float
    requests: int  # evaluated
    sessions: int  # in the held-out window
    users: int  # distinct users among the evaluated requests
    trending_hours: int
    seed: int
    rows: list[Row]
    replay: dict | None = None  # ab/replay.py: the A/B an experiment should find
    # what was evaluated (versions' build fingerprints, sample sizes, seed): the same inputs
    # give the same evaluation, so `feedrank evaluate` shows the saved one instead of redoing it
    inputs: dict | None = field(default=None)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Evaluation:
        rows = [
            Row(**r | {k: Rate(**r[k]) for k in ("hit_rate", "vs_popularity", "vs_trending")})
            for r in data["rows"]
        ]
        return cls(**data | {"rows": rows})

    def row(self, ranker: str) -> Row:
        return next(r for r in self.rows if r.ranker == ranker)

    def oracle_lift_share(self, ranker: str) -> float:
        """Share of the oracle's lift over random that `ranker` reaches (simulated metric)."""
        rates = {r.ranker: r.simulated_hit_rate for r in self.rows}
        value, top, base = rates.get(ranker), rates.get("oracle"), rates.get("random")
        if value is None or top is None or base is None or top <= base:
            return float("nan")
        return (value - base) / (top - base)


def evaluate(
    world: Path,
    models: dict[str, tuple[int, Path]],
    windows: Windows,
    *,
    requests: int,
    seed: int,
    threads: int,
    horizon: timedelta = HORIZON,
    progress: bool = True,
) -> Evaluation:
    """`models`: name -> (version, version folder) of the published models to compare."""
    layout = WorldLayout(world)
    held_out = logged_requests(
        layout, windows.eval_start, windows.eval_end, horizon=horizon, limit=requests, seed=seed
    )
    if not len(held_out):
        raise FeedrankError(f"no feed session in the evaluation window {windows.describe()}")
    online = OnlineFeatures.load(world)  # the server's snapshot: features are point-in-time
    scorers = {
        name: VersionScorer(online, folder, threads=threads) for name, (_, folder) in models.items()
    }
    catalogue = np.sort(next(iter(scorers.values())).inputs.post_ids)
    trending_hours = choose_trending(layout, online, catalogue, windows, horizon, requests, seed)
    rankers: dict[str, Ranker] = {
        name: model_ranker(scorer.inputs, scorer.probabilities, catalogue)
        for name, scorer in scorers.items()
    }
    rankers |= {
        "popularity": popularity_ranker(online, catalogue),
        "trending": trending_ranker(online, catalogue, trending_hours),
        "random": random_ranker(catalogue, seed),
    }
    truth = GroundTruth.load(world) if layout.ground_truth.exists() else None
    if truth is not None:
        rankers["oracle"] = oracle_ranker(truth, catalogue)
    hits, simulated = measure(rankers, online, held_out, catalogue, truth, progress)
    rows = [
        Row(
            name,
            models.get(name, (None,))[0],
            Rate.wilson(hits[name]),
            Rate.paired(hits[name], hits["popularity"]),
            Rate.paired(hits[name], hits["trending"]),
            None if truth is None else float(simulated[name].mean()),
        )
        for name in rankers
    ]
    return Evaluation(
        windows=windows.as_dict(),
        horizon_hours=horizon / timedelta(hours=1),
        requests=len(held_out),
        sessions=held_out.total,
        users=len(np.unique(held_out.user_ids)),
        trending_hours=trending_hours,
        seed=seed,
        rows=rows,
    )
