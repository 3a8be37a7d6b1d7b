"""The A/B report: per-group metrics, test-vs-control differences, the split check.

Each metric is a per-user value (users are the randomisation unit), summarised per group as the
mean over users with a t interval, and compared with Welch's t-test (the decision statistic) and
a user-level bootstrap interval (a second opinion that assumes no normality).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from feedrank.ab import stats

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
    welch: stats.Welch
    relative: float
    bootstrap: tuple[float, float]


@dataclass
class Report:
    control: str
    window_s: int
    groups: list[GroupSummary]
    comparisons: list[Comparison]
    srm: stats.SampleRatio | None
    daily: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        daily = self.daily.assign(day=self.daily["day"].astype(str))
        return {"control": self.control, "window_s": self.window_s,
                "statistics": "user-level Welch t-test (95% CI, Welch-Satterthwaite df); "
                              f"user-level percentile bootstrap ({stats.BOOTSTRAP_REPS} "
                              "resamples) as a second opinion",
                "groups": [asdict(g) for g in self.groups],
                "comparisons": [asdict(c) for c in self.comparisons],
                "srm": self.srm.as_dict() if self.srm else None,
                "daily": daily.replace({np.nan: None}).to_dict("records"), "notes": self.notes}

    def comparison(self, group: str, metric: str) -> Comparison:
        return next(c for c in self.comparisons if c.group == group and c.metric == metric)


def user_values(per_user: pd.DataFrame) -> pd.DataFrame:
    """The per-user metric values from the attribution's per-user sums."""
    return per_user.assign(hit_rate=per_user["hits"] / per_user["exposures"],
                           ctr=(per_user["liked_shown"] / per_user["shown"]).fillna(0.0),
                           likes=per_user["likes"].astype(np.float64))


def analyse(per_user: pd.DataFrame, daily: pd.DataFrame, *, window_s: int,
            shares: dict[str, float] | None, control: str = "control",
            seed: int = 0) -> Report:
    values = user_values(per_user)
    by_group = {name: frame for name, frame in values.groupby("exp_group", sort=True)}
    if control not in by_group:
        raise ValueError(f"no exposures of the control group '{control}' in the log "
                         f"(groups: {sorted(by_group)})")
    small = [f"group '{name}' has {len(frame)} user" for name, frame in by_group.items()
             if len(frame) < 2]
    if small:
        raise ValueError(f"{'; '.join(small)}: comparing groups needs at least 2 users each")
    notes = []
    twice = values["user_id"].duplicated(keep=False)
    if twice.any():
        notes.append(f"{values.loc[twice, 'user_id'].nunique()} users appear in more than one "
                     "group (the router changed during the experiment?)")
    groups = [GroupSummary(name, len(frame), int(frame["exposures"].sum()),
                           {m: stats.mean_interval(frame[m].to_numpy()) for m in METRICS})
              for name, frame in by_group.items()]
    comparisons = [_compare(by_group[control], frame, name, metric, seed)
                   for name, frame in by_group.items() if name != control for metric in METRICS]
    srm = None
    if shares is None:
        notes.append("split not given (--split or --repository): sample ratio not checked")
    else:
        srm = stats.sample_ratio({g.name: g.users for g in groups} | {
            name: 0 for name in shares if name not in by_group}, shares)
    return Report(control, window_s, groups, comparisons, srm, daily, notes)


def _compare(control: pd.DataFrame, test: pd.DataFrame, group: str, metric: str,
             seed: int) -> Comparison:
    a, b = control[metric].to_numpy(), test[metric].to_numpy()
    welch = stats.welch(a, b)
    base = float(a.mean())
    return Comparison(group, metric, base, float(b.mean()), welch,
                      welch.difference / base if base else float("nan"),
                      stats.bootstrap_difference(a, b, seed=seed))


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=1, default=float))


def print_report(report: Report, console: Console) -> None:
    console.print(_groups_table(report))
    console.print(_comparisons_table(report))
    srm = report.srm
    if srm is not None and srm.alarm:
        console.print(f"[bold white on red] SAMPLE RATIO MISMATCH [/] users per group "
                      f"{counts(srm.observed)} vs expected {counts(srm.expected)}: chi2 = "
                      f"{srm.chi2:.1f}, p = {srm.p_value:.2g} < {stats.SRM_ALARM_P}. The split is "
                      "broken; do not trust the differences above.", highlight=False)
    elif srm is not None:
        console.print(f"[green]sample ratio ok[/]: users {counts(srm.observed)} vs expected "
                      f"{counts(srm.expected)}, chi2 = {srm.chi2:.2f}, p = {srm.p_value:.3f}",
                      highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _groups_table(report: Report) -> Table:
    table = Table(title=f"groups (likes within {report.window_s} s of the exposure)")
    for column in ("group", "users", "exposures", *METRICS.values()):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in report.groups:
        table.add_row(g.name, f"{g.users:,}", f"{g.exposures:,}",
                      *(_interval(g.metrics[m]) for m in METRICS))
    return table


def _comparisons_table(report: Report) -> Table:
    table = Table(title=f"difference vs {report.control} (user-level Welch t-test, 95% CI)")
    for column in ("group", "metric", "difference", "relative", "95% CI", "p-value",
                   "bootstrap 95% CI"):
        table.add_column(column, justify="left" if column in ("group", "metric") else "right")
    for c in report.comparisons:
        w = c.welch
        style = "bold green" if w.p_value < 0.05 and w.difference > 0 else (
            "bold red" if w.p_value < 0.05 else "")
        table.add_row(c.group, METRICS[c.metric], f"{w.difference:+.4f}", f"{c.relative:+.1%}",
                      f"[{w.low:+.4f}, {w.high:+.4f}]", f"{w.p_value:.3g}",
                      f"[{c.bootstrap[0]:+.4f}, {c.bootstrap[1]:+.4f}]", style=style)
    return table


def _interval(i: stats.Interval) -> str:
    return f"{i.mean:.4f} ± {(i.high - i.low) / 2:.4f}"


def counts(values: dict[str, float]) -> str:
    """`control 1,411 / test 1,374` (expected counts with one decimal)."""
    return " / ".join(f"{k} {v:,.0f}" if float(v).is_integer() else f"{k} {v:,.1f}"
                      for k, v in values.items())
