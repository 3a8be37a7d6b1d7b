"""User-level A/B statistics: Welch's t-test, a bootstrap second opinion, CUPED variance
reduction, the sample-ratio check; the paired t-test of an offline replay.

Users are the randomisation unit, so every test takes one value per user (a user's hit rate, their
like count, their CTR) and treats users as independent; exposures of one user are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.8
SRM_ALARM_P = 0.001
BOOTSTRAP_REPS = 2000
_CHUNK_VALUES = 4_000_000  # resampled values held in memory at once by the bootstrap


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class TTest:
    """A t-test of mean(b) - mean(a): Welch's for two groups of users (unequal variances), or
    paired, for the same users seen under both treatments (an offline replay)."""

    difference: float
    low: float
    high: float
    t: float
    df: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cuped:
    """Welch's test on y - theta * (x - mean(x)), x a pre-experiment covariate (Deng et al. 2013).
    `variance_reduction` = 1 - var(adjusted) / var(y) over both groups."""

    welch: TTest
    theta: float
    variance_reduction: float


@dataclass(frozen=True)
class SampleRatio:
    """Chi-square goodness of fit of the observed group sizes to the configured split."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float

    @property
    def alarm(self) -> bool:
        return self.p_value < SRM_ALARM_P

    def as_dict(self) -> dict:
        return asdict(self) | {"alarm": self.alarm, "alarm_below_p": SRM_ALARM_P}


def _values(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"{what}: need at least 2 users, got {x.size}")
    return x


def mean_interval(x: np.ndarray, level: float = LEVEL) -> Interval:
    """The mean of per-user values with its t-based confidence interval."""
    x = _values(x, "mean_interval")
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    m = float(x.mean())
    return Interval(m, m - half, m + half)


def welch(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> TTest:
    """Difference of means b - a, its CI with Welch–Satterthwaite degrees of freedom, and the
    two-sided p-value. Identical constant groups give difference 0 and p = 1."""
    a, b = _values(a, "control"), _values(b, "test")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    df = (
        float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
        if se > 0
        else float(len(a) + len(b) - 2)
    )
    return _t_test(float(b.mean() - a.mean()), se, df, level)


def paired(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> TTest:
    """Mean of b - a over the same users, each measured under both treatments (scipy's
    `ttest_rel`): the user's own variation cancels, so the interval is far narrower than an
    A/B's, which sees each user under one treatment only."""
    a, b = _values(a, "control"), _values(b, "test")
    if a.shape != b.shape:
        raise ValueError(f"paired: need one value per user under both, got {a.size} and {b.size}")
    d = b - a
    return _t_test(
        float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), float(len(d) - 1), level
    )


def _t_test(difference: float, se: float, df: float, level: float) -> TTest:
    if se == 0.0:  # constant values: no spread to test against
        return TTest(
            difference,
            difference,
            difference,
            0.0 if difference == 0 else np.inf,
            df,
            1.0 if difference == 0 else 0.0,
        )
    t = difference / se
    half = stats.t.ppf((1 + level) / 2, df) * se
    return TTest(
        difference,
        difference - half,
        difference + half,
        float(t),
        df,
        float(2 * stats.t.sf(abs(t), df)),
    )


def standard_error(low: float, high: float, df: float, level: float = LEVEL) -> float:
    """A t-test's standard error, read back from its `level` interval and degrees of freedom."""
    return float((high - low) / (2 * stats.t.ppf((1 + level) / 2, df)))


def minimum_detectable_effect(w: TTest, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true difference this test would find significant with probability `power`:
    (t_{(1+level)/2} + t_power) x its standard error. It says whether a non-significant result
    could have shown an effect of the size one expected."""
    t_crit = stats.t.ppf((1 + level) / 2, w.df)
    return float((t_crit + stats.t.ppf(power, w.df)) * standard_error(w.low, w.high, w.df, level))


def cuped(
    a: np.ndarray, b: np.ndarray, a_x: np.ndarray, b_x: np.ndarray, level: float = LEVEL
) -> Cuped:
    """CUPED difference b - a: theta is fitted on both groups pooled (x is independent of the
    assignment, so pooling costs no bias and uses every user for theta); a constant covariate
    gives theta = 0, i.e. plain Welch."""
    a, b = _values(a, "control"), _values(b, "test")
    a_x, b_x = _values(a_x, "control covariate"), _values(b_x, "test covariate")
    if a_x.shape != a.shape or b_x.shape != b.shape:
        raise ValueError("cuped: need one covariate value per user")
    y, x = np.concatenate([a, b]), np.concatenate([a_x, b_x])
    # ptp, not var: the variance of a constant float array can come out as rounding noise
    theta = float(np.cov(x, y)[0, 1] / x.var(ddof=1)) if np.ptp(x) > 0 else 0.0
    adjusted = y - theta * (x - x.mean())
    reduction = float(1 - adjusted.var(ddof=1) / y.var(ddof=1)) if np.ptp(y) > 0 else 0.0
    return Cuped(welch(adjusted[: len(a)], adjusted[len(a) :], level), theta, reduction)


def bootstrap_difference(
    a: np.ndarray, b: np.ndarray, *, seed: int = 0, reps: int = BOOTSTRAP_REPS, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile CI of mean(b) - mean(a), resampling users within each group (seeded)."""
    a, b = _values(a, "control"), _values(b, "test")
    rng = np.random.default_rng(seed)
    diff = _resampled_means(b, reps, rng) - _resampled_means(a, reps, rng)
    tail = (1 - level) / 2
    low, high = np.quantile(diff, [tail, 1 - tail])
    return float(low), float(high)


def _resampled_means(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    per_chunk = max(1, _CHUNK_VALUES // len(x))
    return np.concatenate(
        [
            x[rng.integers(0, len(x), (min(per_chunk, reps - done), len(x)))].mean(axis=1)
            for done in range(0, reps, per_chunk)
        ]
    )


def sample_ratio(observed: dict[str, int], shares: dict[str, float]) -> SampleRatio:
    """SRM check: are the users per group what the configured shares predict?"""
    missing = set(shares) ^ set(observed)
    if missing:
        raise ValueError(f"groups in the split and in the log differ: {sorted(missing)}")
    names = sorted(shares)
    counts = np.array([observed[n] for n in names], np.float64)
    weights = np.array([shares[n] for n in names], np.float64)
    expected = counts.sum() * weights / weights.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p = float(stats.chi2.sf(chi2, len(names) - 1)) if len(names) > 1 else 1.0
    return SampleRatio(
        {n: int(c) for n, c in zip(names, counts)},
        {n: float(e) for n, e in zip(names, expected)},
        chi2,
        p,
    )
