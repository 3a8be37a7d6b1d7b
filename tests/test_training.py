"""Early stopping keeps the model a full run would publish, at a fraction of the trees grown."""

from __future__ import annotations

import numpy as np
import pytest

from feedrank.export.training import TrainParams, fit
from feedrank.settings import BuildSettings


def drifting_data(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Training labels lean on a column that validation's do not: validation AUC peaks early,
    as the default world's counts made it peak at ~70 of 300 trees."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6000, 4)).astype(np.float32)
    y_train = (x[:4000, 0] + 1.5 * x[:4000, 1] + rng.normal(size=4000) > 0).astype(int)
    y_valid = (x[4000:, 0] + rng.normal(size=2000) > 0).astype(int)
    return (x[:4000], y_train), (x[4000:], y_valid)


def test_early_stopping_keeps_the_full_runs_trees() -> None:
    train, valid = drifting_data(0)
    full = fit("m", TrainParams(300, 4, None, 42, 1), train, valid, progress=False)
    early = fit(
        "m", TrainParams(300, 4, None, 42, 1, early_stopping=30), train, valid, progress=False
    )
    grown = len(early.get_evals_result()["validation"]["AUC"])
    assert full.get_best_iteration() + 30 < 300  # a run where stopping early can save trees
    assert grown < 300 and early.tree_count_ == full.tree_count_
    np.testing.assert_array_equal(early.predict_proba(valid[0]), full.predict_proba(valid[0]))


def test_a_stronger_l2_keeps_catboosts_automatic_learning_rate() -> None:
    """CatBoost picks its learning rate from the data only while l2_leaf_reg is at its default;
    feedrank reads that rate with a one-tree probe and trains the regularised model with it."""
    train, valid = drifting_data(1)
    default = fit("m", TrainParams(200, 4, None, 42, 1), train, valid, progress=False)
    shrunk = TrainParams(200, 4, None, 42, 1, l2_leaf_reg=50.0)
    regularised = fit("m", shrunk, train, valid, progress=False)
    assert regularised.learning_rate_ == default.learning_rate_ != 0.03
    assert regularised.get_all_params()["l2_leaf_reg"] == 50.0

    def first_tree(model) -> float:
        """The mean size of the first tree's leaf values over the validation rows."""
        raw = model.predict(valid[0], prediction_type="RawFormulaVal", ntree_end=1)
        return float(np.abs(raw - raw.mean()).mean())

    assert first_tree(regularised) < first_tree(default)  # its leaves are shrunk
    # a rate given is kept
    given = TrainParams(50, 4, 0.2, 42, 1, l2_leaf_reg=50.0)
    assert fit("m", given, train, valid, progress=False).learning_rate_ == pytest.approx(0.2)


def test_the_build_trains_at_a_set_rate_unless_told_auto() -> None:
    assert TrainParams.from_settings(BuildSettings()).learning_rate == 0.15
    automatic = TrainParams.from_settings(BuildSettings(learning_rate="auto"))
    assert automatic.learning_rate is None and automatic.iterations == 800
