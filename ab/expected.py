"""What only a simulation can measure: each exposure's expected hit rate@5 under the ground truth.

1 − Π(1 − p_i) over the shown posts, p_i the true like probability at the request moment: the
quantity `feedrank evaluate` calls the simulated hit rate@5, free of the Bernoulli noise of the
drawn likes, so the A/B difference it gives is the one the offline evaluation predicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console

from feedrank.ab import stats
from feedrank.world.ground_truth import GroundTruth


def expected_hit_rates(
    truth: GroundTruth, views: pd.DataFrame, groups: pd.Series, control: str = "control"
) -> dict:
    """Per-group user means of the expected hit rate@5 and each group's Welch test vs control.
    `views` has exposure, user_id, post_id, timestamp; `groups` maps user_id -> group."""
    p = truth.like_probability(
        views["user_id"].to_numpy(),
        views["post_id"].to_numpy(),
        views["timestamp"].to_numpy("datetime64[us]"),
    )
    miss = pd.Series(np.log1p(-p)).groupby(views["exposure"].to_numpy()).sum()
    per_exposure = pd.DataFrame({"expected": 1 - np.exp(miss.to_numpy())}, index=miss.index)
    per_exposure["user_id"] = views.groupby("exposure")["user_id"].first()
    per_user = per_exposure.groupby("user_id")["expected"].mean()
    by_group = {
        name: values.to_numpy() for name, values in per_user.groupby(groups.reindex(per_user.index))
    }
    return {
        "groups": {name: stats.mean_interval(v).__dict__ for name, v in by_group.items()},
        "differences": {
            name: stats.welch(by_group[control], v).as_dict()
            for name, v in by_group.items()
            if name != control
        },
    }


def print_expected(result: dict, console: Console) -> None:
    console.print(
        "ground truth (simulation only): expected hit rate@5, mean over users: "
        + ", ".join(f"{name} {g['mean']:.4f}" for name, g in result["groups"].items()),
        highlight=False,
    )
    for name, w in result["differences"].items():
        console.print(
            f"  {name} − control {w['difference']:+.4f}, 95% CI [{w['low']:+.4f}, "
            f"{w['high']:+.4f}], p = {w['p_value']:.3g}",
            highlight=False,
        )
