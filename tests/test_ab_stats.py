"""ab.stats against scipy on fixed inputs, the bootstrap against Welch, CUPED on synthetic users
whose covariate does or does not predict the metric."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from feedrank.ab.stats import (
    bootstrap_difference,
    cuped,
    mean_interval,
    minimum_detectable_effect,
    paired,
    sample_ratio,
    welch,
)

RNG = np.random.default_rng(11)
CONTROL = RNG.binomial(12, 0.30, 400) / 12  # per-user hit rates, unequal sizes
TEST = RNG.binomial(7, 0.34, 650) / 7  # and unequal variances


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


def test_paired_matches_scipy_ttest_rel() -> None:
    before = CONTROL[:300]
    after = before + RNG.normal(0.02, 0.05, 300)  # the same users under the other model
    ours = paired(before, after)
    ref = stats.ttest_rel(after, before)
    ci = ref.confidence_interval(0.95)
    assert (ours.t, ours.df) == pytest.approx((ref.statistic, ref.df), rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # pairing removes the users' own spread: far narrower than Welch on the same values
    assert ours.high - ours.low < 0.5 * (welch(before, after).high - welch(before, after).low)


def test_paired_refuses_unpaired_inputs() -> None:
    with pytest.raises(ValueError, match="both"):
        paired(CONTROL[:10], CONTROL[:11])


def test_mean_interval_matches_scipy() -> None:
    ours = mean_interval(CONTROL)
    low, high = stats.t.interval(
        0.95, len(CONTROL) - 1, loc=CONTROL.mean(), scale=stats.sem(CONTROL)
    )
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
    assert ours.alarm  # p ~ 2.7e-5


def test_sample_ratio_three_groups_uneven_split() -> None:
    observed = {"a": 1980, "b": 3050, "c": 4970}
    ours = sample_ratio(observed, {"a": 0.2, "b": 0.3, "c": 0.5})
    ref = stats.chisquare([1980, 3050, 4970], [2000, 3000, 5000])
    assert (ours.chi2, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert not ours.alarm


def test_sample_ratio_refuses_mismatched_groups() -> None:
    with pytest.raises(ValueError, match="differ"):
        sample_ratio({"control": 10, "other": 12}, {"control": 50, "test": 50})


CONTROL_X = CONTROL + RNG.normal(0, 0.1, len(CONTROL))  # a covariate that predicts the metric
TEST_X = TEST + RNG.normal(0, 0.1, len(TEST))


def test_cuped_theta_is_the_pooled_regression_slope() -> None:
    x, y = np.concatenate([CONTROL_X, TEST_X]), np.concatenate([CONTROL, TEST])
    ours = cuped(CONTROL, TEST, CONTROL_X, TEST_X)
    assert ours.theta == pytest.approx(stats.linregress(x, y).slope, rel=1e-12)
    assert ours.theta == pytest.approx(np.cov(x, y)[0, 1] / np.var(x, ddof=1), rel=1e-12)


def test_cuped_is_welch_on_the_adjusted_values() -> None:
    ours = cuped(CONTROL, TEST, CONTROL_X, TEST_X)
    mean_x = np.concatenate([CONTROL_X, TEST_X]).mean()
    a, b = CONTROL - ours.theta * (CONTROL_X - mean_x), TEST - ours.theta * (TEST_X - mean_x)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.welch.difference == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert (ours.welch.t, ours.welch.df) == pytest.approx((ref.statistic, ref.df), rel=1e-12)
    assert ours.welch.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (ours.welch.low, ours.welch.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    y, adjusted = np.concatenate([CONTROL, TEST]), np.concatenate([a, b])
    assert ours.variance_reduction == pytest.approx(1 - adjusted.var() / y.var(), rel=1e-12)


def _users(seed: int, effect: float, correlated: bool, n: int = 1000) -> tuple[np.ndarray, ...]:
    """Per-user hit rates driven by each user's own like propensity (the between-user spread
    CUPED removes); the covariate is that user's like rate over 20 earlier views, or noise."""
    rng = np.random.default_rng(seed)
    propensity = rng.beta(2, 6, 2 * n)
    x = rng.binomial(20, propensity if correlated else rng.beta(2, 6, 2 * n)) / 20
    y = rng.binomial(10, np.clip(propensity + effect * (np.arange(2 * n) >= n), 0, 1)) / 10
    return y[:n], y[n:], x[:n], x[n:]


def test_cuped_narrows_the_interval_without_bias() -> None:
    effect, seeds = 0.02, 200
    runs = [
        (welch(*_users(s, effect, True)[:2]), cuped(*_users(s, effect, True))) for s in range(seeds)
    ]
    widths = np.array([(c.welch.high - c.welch.low) / (w.high - w.low) for w, c in runs])
    reductions = np.array([c.variance_reduction for _, c in runs])
    # the covariate explains about a third of the per-user variance: the CI is ~0.8 as wide
    assert np.all(widths < 0.9) and 0.2 < reductions.mean() < 0.5
    assert np.allclose(widths, np.sqrt(1 - reductions), rtol=0.02)
    differences = np.array([c.welch.difference for _, c in runs])
    # unbiased: the mean over the seeds lies within 4 standard errors of the planted effect
    assert abs(differences.mean() - effect) < 4 * differences.std(ddof=1) / np.sqrt(seeds)
    covered = np.mean([c.welch.low < effect < c.welch.high for _, c in runs])
    assert 0.9 < covered <= 1.0


def test_cuped_with_an_uncorrelated_covariate_changes_nothing_much() -> None:
    for seed in range(20):
        a, b, a_x, b_x = _users(seed, 0.02, False)
        raw, adjusted = welch(a, b), cuped(a, b, a_x, b_x)
        assert abs(adjusted.variance_reduction) < 0.01
        assert (adjusted.welch.high - adjusted.welch.low) == pytest.approx(
            raw.high - raw.low, rel=0.01
        )
        assert adjusted.welch.difference == pytest.approx(
            raw.difference, abs=0.1 * (raw.high - raw.low)
        )


def test_cuped_with_a_constant_covariate_is_welch() -> None:
    adjusted = cuped(CONTROL, TEST, np.full(len(CONTROL), 0.3), np.full(len(TEST), 0.3))
    assert (adjusted.theta, adjusted.variance_reduction) == (0.0, 0.0)
    assert adjusted.welch == welch(CONTROL, TEST)


def test_cuped_needs_one_covariate_value_per_user() -> None:
    with pytest.raises(ValueError, match="one covariate value per user"):
        cuped(CONTROL, TEST, CONTROL_X[:-1], TEST_X)


def test_minimum_detectable_effect_has_the_stated_power() -> None:
    """At a true difference equal to the MDE, the two-sided Welch test rejects with probability
    0.8 (noncentral t, scipy), and the MDE scales with 1/sqrt(users)."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.80, 0.2, 3000), rng.normal(0.81, 0.25, 2500)
    w = welch(a, b)
    mde = minimum_detectable_effect(w)
    se = (w.high - w.low) / (2 * stats.t.ppf(0.975, w.df))
    t_crit = stats.t.ppf(0.975, w.df)
    noncentrality = mde / se
    power = stats.nct.sf(t_crit, w.df, noncentrality) + stats.nct.cdf(-t_crit, w.df, noncentrality)
    assert power == pytest.approx(0.8, abs=0.005)
    quarter = minimum_detectable_effect(welch(np.tile(a, 4), np.tile(b, 4)))
    assert quarter == pytest.approx(mde / 2, rel=0.01)
