"""ab.stats against scipy on fixed inputs, and the bootstrap against Welch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from feedrank.ab.stats import bootstrap_difference, mean_interval, sample_ratio, welch

RNG = np.random.default_rng(11)
CONTROL = RNG.binomial(12, 0.30, 400) / 12           # per-user hit rates, unequal sizes
TEST = RNG.binomial(7, 0.34, 650) / 7                # and unequal variances


def test_welch_matches_scipy() -> None:
    ours = welch(CONTROL, TEST)
    ref = stats.ttest_ind(TEST, CONTROL, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert ours.difference == pytest.approx(TEST.mean() - CONTROL.mean())


def test_welch_sign_follows_test_minus_control() -> None:
    assert welch(TEST, CONTROL).difference == pytest.approx(-welch(CONTROL, TEST).difference)


def test_welch_on_constant_groups() -> None:
    same = welch(np.ones(5), np.ones(8))
    assert (same.difference, same.p_value) == (0.0, 1.0)
    apart = welch(np.zeros(5), np.ones(8))
    assert apart.p_value == 0.0 and apart.difference == 1.0


def test_mean_interval_matches_scipy() -> None:
    ours = mean_interval(CONTROL)
    low, high = stats.t.interval(0.95, len(CONTROL) - 1, loc=CONTROL.mean(),
                                 scale=stats.sem(CONTROL))
    assert (ours.mean, ours.low, ours.high) == pytest.approx((CONTROL.mean(), low, high))


def test_bootstrap_is_seeded_and_agrees_with_welch() -> None:
    first = bootstrap_difference(CONTROL, TEST, seed=3)
    assert first == bootstrap_difference(CONTROL, TEST, seed=3)
    assert first != bootstrap_difference(CONTROL, TEST, seed=4)
    w = welch(CONTROL, TEST)
    width = w.high - w.low
    # 2000 resamples: the percentile ends wobble by a few percent of the width around Welch's
    assert first[0] == pytest.approx(w.low, abs=0.1 * width)
    assert first[1] == pytest.approx(w.high, abs=0.1 * width)


def test_sample_ratio_matches_scipy_chisquare() -> None:
    observed = {"control": 5210, "test": 4790}
    ours = sample_ratio(observed, {"control": 50, "test": 50})
    ref = stats.chisquare([5210, 4790], [5000, 5000])
    assert ours.chi2 == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)
    assert ours.alarm                               # p ~ 2.7e-5


def test_sample_ratio_three_groups_uneven_split() -> None:
    observed = {"a": 1980, "b": 3050, "c": 4970}
    ours = sample_ratio(observed, {"a": 0.2, "b": 0.3, "c": 0.5})
    ref = stats.chisquare([1980, 3050, 4970], [2000, 3000, 5000])
    assert (ours.chi2, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert not ours.alarm


def test_sample_ratio_refuses_mismatched_groups() -> None:
    with pytest.raises(ValueError, match="differ"):
        sample_ratio({"control": 10, "other": 12}, {"control": 50, "test": 50})
