"""What only a simulation can measure: each exposure's outcome expected under the ground truth.

p_i is the true like probability of each shown post at the request moment:
- expected hit rate@5, 1 − Π(1 − p_i) over an exposure's posts: the quantity `feedrank evaluate`
  calls the simulated hit rate@5;
- expected likes per user, Σ p_i over every post shown to the user: what the drawn likes scatter
  around.
Neither has the noise of the last draw, so the A/B difference they give is the one the offline
evaluation predicts. The expected hit rate's interval is far narrower than the drawn hit rate's;
the expected likes' is hardly narrower than the drawn likes', since over a week most of their
spread comes from which posts later feeds show, which earlier draws decide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from feedrank.ab import stats
from feedrank.world.ground_truth import GroundTruth

EXPECTED_HIT = "expected_hit_rate"
EXPECTED_LIKES = "expected_likes"
EXPECTED_METRICS = {EXPECTED_HIT: "expected hit rate@5", EXPECTED_LIKES: "expected likes per user"}


def expected_metrics(
    truth: GroundTruth, views: pd.DataFrame, groups: pd.Series, control: str = "control"
) -> dict:
    """Per metric, the per-group user means and each group's Welch test vs control.
    `views` has exposure, user_id, post_id, timestamp; `groups` maps user_id -> group."""
    p = truth.like_probability(
        views["user_id"].to_numpy(),
        views["post_id"].to_numpy(),
        views["timestamp"].to_numpy("datetime64[us]"),
    )
    exposures = (
        pd.DataFrame({"miss": np.log1p(-p), "p": p, "user_id": views["user_id"].to_numpy()})
        .groupby(views["exposure"].to_numpy())
        .agg(miss=("miss", "sum"), p=("p", "sum"), user_id=("user_id", "first"))
    )
    per_user = pd.DataFrame(
        {
            EXPECTED_HIT: (1 - np.exp(exposures["miss"])).groupby(exposures["user_id"]).mean(),
            EXPECTED_LIKES: exposures["p"].groupby(exposures["user_id"]).sum(),
        }
    )
    by_group = dict(list(per_user.groupby(groups.reindex(per_user.index))))
    return {
        metric: {
            "groups": {
                name: stats.mean_interval(frame[metric].to_numpy()).__dict__
                for name, frame in by_group.items()
            },
            "differences": {
                name: stats.welch(
                    by_group[control][metric].to_numpy(), frame[metric].to_numpy()
                ).as_dict()
                for name, frame in by_group.items()
                if name != control
            },
        }
        for metric in EXPECTED_METRICS
    }


def print_expected(result: dict, console: Console) -> None:
    for metric, label in EXPECTED_METRICS.items():
        console.print(
            f"ground truth (simulation only): {label}, mean over users: "
            + ", ".join(f"{name} {g['mean']:.4f}" for name, g in result[metric]["groups"].items()),
            highlight=False,
        )
        for name, w in result[metric]["differences"].items():
            console.print(
                f"  {name} − control {w['difference']:+.4f}, 95% CI [{w['low']:+.4f}, "
                f"{w['high']:+.4f}], p = {w['p_value']:.3g}",
                highlight=False,
            )
