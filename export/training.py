"""Fitting one CatBoost classifier with a fixed seed and a progress bar fed by CatBoost itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from catboost import CatBoostClassifier

from feedrank.progress import progress_bar
from feedrank.settings import BuildSettings

# CatBoost's own default: left at it, CatBoost also chooses the learning rate for the data
CATBOOST_L2 = 3.0


@dataclass(frozen=True)
class TrainParams:
    iterations: int
    depth: int
    learning_rate: float | None
    seed: int
    threads: int
    early_stopping: int | None = None
    l2_leaf_reg: float = CATBOOST_L2

    @classmethod
    def from_settings(cls, build: BuildSettings) -> TrainParams:
        return cls(
            build.iterations,
            build.depth,
            None if build.learning_rate == "auto" else build.learning_rate,
            build.seed,
            build.threads,
            build.early_stopping,
            build.l2_leaf_reg,
        )

    def catboost(self) -> dict:
        params = {
            "iterations": self.iterations,
            "depth": self.depth,
            "random_seed": self.seed,
            "thread_count": self.threads,
            "loss_function": "Logloss",
            "eval_metric": "AUC",
            "custom_metric": ["Logloss"],
            # keep the trees up to the best validation AUC: later ones fit the training
            # window's counts, which drift (a post's views double by validation time)
            "use_best_model": True,
            "allow_writing_files": False,
            "verbose": False,
        }
        if self.learning_rate is not None:
            params["learning_rate"] = self.learning_rate
        if self.l2_leaf_reg != CATBOOST_L2:
            params["l2_leaf_reg"] = self.l2_leaf_reg
        if self.early_stopping is not None:
            # trees past the best are dropped by use_best_model anyway: stop growing them once
            # validation AUC has been flat this long
            params["early_stopping_rounds"] = self.early_stopping
        return params

    def identity(self) -> dict:
        """What the model is meant to be. Threads are left out: they can change CatBoost's float
        sums in the last bits (the test model's best iteration moved at a fixed seed), which is
        no reason to retrain a published version."""
        return {k: v for k, v in asdict(self).items() if k != "threads"}


class _ProgressCallback:
    def __init__(self, advance, trees: int | None = None) -> None:
        self.advance, self.trees = advance, trees

    def after_iteration(self, info) -> bool:
        self.advance()
        return self.trees is None or info.iteration < self.trees


def fit(
    name: str,
    params: TrainParams,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    *,
    progress: bool = True,
) -> CatBoostClassifier:
    settings = params.catboost()
    if params.learning_rate is None and params.l2_leaf_reg != CATBOOST_L2:
        settings["learning_rate"] = automatic_learning_rate(params, train, valid)
    model = CatBoostClassifier(**settings)
    with progress_bar(transient=False) as bar:
        task = bar.add_task(f"train {name}", total=params.iterations, visible=progress)
        model.fit(*train, eval_set=valid, callbacks=[_ProgressCallback(lambda: bar.advance(task))])
        bar.update(task, completed=params.iterations)  # stopped early: done all the same
    return model


def automatic_learning_rate(
    params: TrainParams, train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray]
) -> float:
    """The learning rate CatBoost would choose for this data and tree count. It chooses one
    only while l2_leaf_reg is at its default (0.03 otherwise, far too slow for a few hundred
    trees), so one tree is grown with the default to read it."""
    left_out = ("l2_leaf_reg", "early_stopping_rounds")
    probe = CatBoostClassifier(**{k: v for k, v in params.catboost().items() if k not in left_out})
    probe.fit(*train, eval_set=valid, callbacks=[_ProgressCallback(lambda: None, trees=1)])
    return float(probe.learning_rate_)
