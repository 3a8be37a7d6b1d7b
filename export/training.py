"""Fitting one CatBoost classifier with a fixed seed and a progress bar fed by CatBoost itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from catboost import CatBoostClassifier

from feedrank.progress import progress_bar


@dataclass(frozen=True)
class TrainParams:
    iterations: int
    depth: int
    learning_rate: float | None
    seed: int
    threads: int
    early_stopping: int | None = None

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
    def __init__(self, advance) -> None:
        self.advance = advance

    def after_iteration(self, info) -> bool:
        self.advance()
        return True


def fit(
    name: str,
    params: TrainParams,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    *,
    progress: bool = True,
) -> CatBoostClassifier:
    model = CatBoostClassifier(**params.catboost())
    with progress_bar(transient=False) as bar:
        task = bar.add_task(f"train {name}", total=params.iterations, visible=progress)
        model.fit(*train, eval_set=valid, callbacks=[_ProgressCallback(lambda: bar.advance(task))])
        bar.update(task, completed=params.iterations)  # stopped early: done all the same
    return model
