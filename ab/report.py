"""The A/B report: per-group metrics, test-vs-control differences, the split check.

Each metric is a per-user value (users are the randomisation unit), summarised per group as the
mean over users with a t interval, and compared with Welch's t-test (the decision statistic) and
a user-level bootstrap interval (a second opinion that assumes no normality). Given a
pre-experiment covariate, each comparison also carries the CUPED-adjusted Welch test: the same
difference in expectation, a narrower interval when the covariate predicts the metric.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from feedrank.ab import stats
from feedrank.ab.covariate import NAME as COVARIATE
from feedrank.ab.covariate import PrePeriod

METRICS = {"hit_rate": "hit rate@5", "likes": "likes per user", "ctr": "CTR of shown posts"}


@dataclass(frozen=True)
class GroupSummary:
    name: str
    users: int
    exposures: int
    metrics: dict[str, stats.Interval]


@dataclass(frozen=True)
class Comparison:
    group: str
    metric: str
    control: float
    test: float
    welch: stats.TTest
    relative: float
    bootstrap: tuple[float, float]
    mde: float  # minimum detectable effect of this Welch test at 80% power
    cuped: stats.Cuped | None = None

    def require_cuped(self) -> stats.Cuped:
        """`cuped`, of a report that carries CUPED (one with a `pre_period`)."""
        if self.cuped is None:
            raise ValueError(f"no CUPED comparison for {self.group} {self.metric}")
        return self.cuped


@dataclass
class Report:
    control: str
    window_s: int
    groups: list[GroupSummary]
    comparisons: list[Comparison]
    srm: stats.SampleRatio | None
    daily: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    pre_period: PrePeriod | None = None  # set when the comparisons carry CUPED

    @property
    def statistics(self) -> str:
        text = (
            "user-level Welch t-test (95% CI, Welch-Satterthwaite df) on the raw per-user "
            "values, the decision statistic; user-level percentile bootstrap "
            f"({stats.BOOTSTRAP_REPS} resamples) as a second opinion"
        )
        if self.pre_period is None:
            return text
        return (
            f"{text}; CUPED: the same Welch test on per-user values adjusted by the "
            f"{COVARIATE} over the {self.pre_period.lookback_days} days before the "
            "experiment (theta pooled over both groups), a narrower interval for the same "
            "difference, reported beside the decision statistic"
        )

    def as_dict(self) -> dict:
        daily = self.daily.assign(day=self.daily["day"].astype(str))
        return {
            "control": self.control,
            "window_s": self.window_s,
            "statistics": self.statistics,
            "groups": [asdict(g) for g in self.groups],
            "comparisons": [asdict(c) for c in self.comparisons],
            "cuped_covariate": self.pre_period.as_dict() if self.pre_period else None,
            "srm": self.srm.as_dict() if self.srm else None,
            "daily": daily.replace({np.nan: None}).to_dict("records"),
            "notes": self.notes,
        }

    def comparison(self, group: str, metric: str) -> Comparison:
        return next(c for c in self.comparisons if c.group == group and c.metric == metric)


def user_values(per_user: pd.DataFrame) -> pd.DataFrame:
    """The per-user metric values from the attribution's per-user sums."""
    return per_user.assign(
        hit_rate=per_user["hits"] / per_user["exposures"],
        ctr=(per_user["liked_shown"] / per_user["shown"]).fillna(0.0),
        likes=per_user["likes"].astype(np.float64),
    )


def analyse(
    per_user: pd.DataFrame,
    daily: pd.DataFrame,
    *,
    window_s: int,
    shares: dict[str, float] | None,
    control: str = "control",
    seed: int = 0,
    pre_period: PrePeriod | None = None,
) -> Report:
    """The report; with `pre_period` (every user's pre-experiment covariate) the comparisons also
    carry CUPED, unless no user has a view before the experiment."""
    notes = []
    if pre_period is not None and pre_period.users_with_views == 0:
        notes.append(
            f"no user of the experiment has a view in the {pre_period.lookback_days} "
            f"days before {pre_period.start}: CUPED not computed"
        )
        pre_period = None
    values = user_values(per_user)
    if pre_period is not None:
        values = values.join(pre_period.users["like_rate"].rename("covariate"), on="user_id")
        if values["covariate"].isna().any():
            raise ValueError("the CUPED covariate misses users of the log")
    by_group = {name: frame for name, frame in values.groupby("exp_group", sort=True)}
    if control not in by_group:
        raise ValueError(
            f"no exposures of the control group '{control}' in the log (groups: {sorted(by_group)})"
        )
    small = [
        f"group '{name}' has {len(frame)} user"
        for name, frame in by_group.items()
        if len(frame) < 2
    ]
    if small:
        raise ValueError(f"{'; '.join(small)}: comparing groups needs at least 2 users each")
    if not values["likes"].any():
        notes.append(
            f"no like followed any exposure within {window_s} s: every metric is 0 in "
            "every group, so there is nothing to compare (a wider --window, or the "
            "events that hold the likes?)"
        )
    else:
        notes += [
            f"group '{name}': no like within {window_s} s of its exposures"
            for name, frame in by_group.items()
            if not frame["likes"].any()
        ]
    if shares is not None:
        notes += [
            f"group '{name}' is in the split but has no exposures in the log"
            for name in shares
            if name not in by_group
        ]
    twice = values["user_id"].duplicated(keep=False)
    if twice.any():
        notes.append(
            f"{values.loc[twice, 'user_id'].nunique()} users appear in more than one "
            "group (the router changed during the experiment?)"
        )
    groups = [
        GroupSummary(
            name,
            len(frame),
            int(frame["exposures"].sum()),
            {m: stats.mean_interval(frame[m].to_numpy()) for m in METRICS},
        )
        for name, frame in by_group.items()
    ]
    comparisons = [
        _compare(by_group[control], frame, name, metric, seed, pre_period is not None)
        for name, frame in by_group.items()
        if name != control
        for metric in METRICS
    ]
    srm = None
    if shares is None:
        notes.append("split not given (--split or --repository): sample ratio not checked")
    else:
        srm = stats.sample_ratio(
            {g.name: g.users for g in groups}
            | {name: 0 for name in shares if name not in by_group},
            shares,
        )
    return Report(control, window_s, groups, comparisons, srm, daily, notes, pre_period)


def _compare(
    control: pd.DataFrame, test: pd.DataFrame, group: str, metric: str, seed: int, with_cuped: bool
) -> Comparison:
    a, b = control[metric].to_numpy(), test[metric].to_numpy()
    welch = stats.welch(a, b)
    base = float(a.mean())
    cuped = (
        stats.cuped(a, b, control["covariate"].to_numpy(), test["covariate"].to_numpy())
        if with_cuped
        else None
    )
    return Comparison(
        group,
        metric,
        base,
        float(b.mean()),
        welch,
        welch.difference / base if base else float("nan"),
        stats.bootstrap_difference(a, b, seed=seed),
        stats.minimum_detectable_effect(welch),
        cuped,
    )


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=1, default=float))


def print_report(report: Report, console: Console) -> None:
    """Tables that fit the terminal: under 120 columns each table keeps its decisive columns
    and the rest follow in a second table (the JSON and HTML keep full precision)."""
    narrow = console.width < 120
    for table in (*_groups_tables(report, narrow), *_comparisons_tables(report, narrow)):
        console.print(table)
    if report.pre_period is not None:
        console.print(_cuped_table(report, report.pre_period, narrow))
    srm = report.srm
    if srm is not None and srm.alarm:
        console.print(
            f"[bold white on red] SAMPLE RATIO MISMATCH [/] users per group "
            f"{counts(srm.observed)} vs expected {counts(srm.expected)}: chi2 = "
            f"{srm.chi2:.1f}, p = {srm.p_value:.2g} < {stats.SRM_ALARM_P}. The split is "
            "broken; do not trust the differences above.",
            highlight=False,
        )
    elif srm is not None:
        console.print(
            f"[green]sample ratio ok[/]: users {counts(srm.observed)} vs expected "
            f"{counts(srm.expected)}, chi2 = {srm.chi2:.2f}, p = {srm.p_value:.3f}",
            highlight=False,
        )
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _table(
    title: str,
    columns: list[str],
    rows: list[list[str]],
    left: int = 1,
    styles: list[str] | None = None,
) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", no_wrap=True)
    for row, style in zip(rows, styles or [""] * len(rows)):
        table.add_row(*row, style=style)
    return table


def _groups_tables(report: Report, narrow: bool) -> list[Table]:
    title = f"groups (likes within {report.window_s} s of the exposure)"
    counted = [[g.name, f"{g.users:,}", f"{g.exposures:,}"] for g in report.groups]
    metrics = [[_interval(g.metrics[m]) for m in METRICS] for g in report.groups]
    if not narrow:
        return [
            _table(
                title,
                ["group", "users", "exposures", *METRICS.values()],
                [a + b for a, b in zip(counted, metrics)],
            )
        ]
    by_metric = [
        [g.name, METRICS[m], _interval(g.metrics[m])] for g in report.groups for m in METRICS
    ]
    return [
        _table(title, ["group", "users", "exposures"], counted),
        _table("per-user means ± 95% half-width", ["group", "metric", "mean"], by_metric, 2),
    ]


def _comparisons_tables(report: Report, narrow: bool) -> list[Table]:
    title = f"difference vs {report.control} (user-level Welch t-test, 95% CI)"
    main = ["group", "metric", "difference", "95% CI", "p-value"]
    extra = ["relative", "bootstrap 95% CI", "MDE 80%"]
    rows, styles = [], []
    for c in report.comparisons:
        w = c.welch
        rows.append(
            [
                c.group,
                METRICS[c.metric],
                _num(w.difference, "+.4f"),
                _span(w.low, w.high),
                _num(w.p_value, ".3g"),
                _num(c.relative, "+.1%"),
                _span(*c.bootstrap),
                "±" + _num(c.mde, ".4f"),
            ]
        )
        significant = w.p_value < 0.05
        styles.append(("bold green" if w.difference > 0 else "bold red") if significant else "")
    if not narrow:
        return [_table(title, main + extra, rows, 2, styles)]
    return [
        _table(title, main, [r[:5] for r in rows], 2, styles),
        _table(
            "the same differences: relative size, bootstrap, detectable effect",
            ["group", "metric", *extra],
            [r[:2] + r[5:] for r in rows],
            2,
        ),
    ]


def _cuped_table(report: Report, pre: PrePeriod, narrow: bool) -> Table:
    title = (
        f"CUPED difference vs {report.control} (covariate: {COVARIATE} in the "
        f"{pre.lookback_days} days before {pre.start}, {pre.users_with_views:,} of "
        f"{len(pre.users):,} users with views); a second opinion, Welch above decides"
    )
    columns = ["group", "metric", "difference", "95% CI", "p-value", "variance reduction"]
    rows = [
        [
            c.group,
            METRICS[c.metric],
            _num(cuped.welch.difference, "+.4f"),
            _span(cuped.welch.low, cuped.welch.high),
            _num(cuped.welch.p_value, ".3g"),
            _num(cuped.variance_reduction, ".1%"),
            _num(cuped.theta, ".3g"),
            _num(width_ratio(c), ".2f"),
        ]
        for c in report.comparisons
        for cuped in [c.require_cuped()]
    ]
    if narrow:
        return _table(title, columns, [r[:6] for r in rows], 2)
    return _table(title, [*columns, "theta", "CI width / Welch"], rows, 2)


def _num(value: float, spec: str) -> str:
    """A number, or "n/a" where it is undefined (no variance, no control mean): never nan."""
    return format(value, spec) if np.isfinite(value) else "n/a"


def _span(low: float, high: float) -> str:
    return f"[{_num(low, '+.4f')}, {_num(high, '+.4f')}]"


def width_ratio(c: Comparison) -> float:
    """The CUPED interval's width over the raw Welch interval's (below 1: tighter)."""
    raw = c.welch.high - c.welch.low
    cuped = c.require_cuped()
    return (cuped.welch.high - cuped.welch.low) / raw if raw else float("nan")


def _interval(i: stats.Interval) -> str:
    return f"{_num(i.mean, '.4f')} ± {_num((i.high - i.low) / 2, '.4f')}"


def counts(values: Mapping[str, float]) -> str:
    """`control 1,411 / test 1,374` (expected counts with one decimal)."""
    return " / ".join(
        f"{k} {v:,.0f}" if float(v).is_integer() else f"{k} {v:,.1f}" for k, v in values.items()
    )
