"""The report's figures (matplotlib, Agg): metrics by group (with CUPED, also the differences'
raw and CUPED intervals), the daily trend, the split check."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from feedrank.ab.report import METRICS, Report

FILES = {"metrics": "metrics_by_group.png", "daily": "daily_trend.png", "split": "split_check.png"}


def write_plots(report: Report, out: Path) -> dict[str, Path]:
    """Draw every figure into `out`; return name -> PNG path."""
    paths = {}
    for name, draw in (("metrics", _metrics), ("daily", _daily), ("split", _split)):
        figure = draw(report)
        paths[name] = out / FILES[name]
        figure.savefig(paths[name], dpi=110, bbox_inches="tight")
        plt.close(figure)
    return paths


def _metrics(report: Report) -> plt.Figure:
    rows = 1 if report.pre_period is None else 2
    figure, axes = plt.subplots(
        rows, len(METRICS), figsize=(4 * len(METRICS), 3.4 * rows), squeeze=False
    )
    names = [g.name for g in report.groups]
    for ax, (metric, label) in zip(axes[0], METRICS.items()):
        means = [g.metrics[metric].mean for g in report.groups]
        errors = [(g.metrics[metric].high - g.metrics[metric].low) / 2 for g in report.groups]
        ax.errorbar(range(len(names)), means, yerr=errors, fmt="o", capsize=6, ms=7)
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    for ax, metric in zip(axes[1:].ravel(), METRICS):
        _differences(ax, report, metric)
    figure.suptitle(
        "mean per user, 95% interval"
        + ("; below: difference vs control, Welch and CUPED 95% intervals" if rows == 2 else "")
    )
    figure.tight_layout()
    return figure


def _differences(ax: plt.Axes, report: Report, metric: str) -> None:
    compared = [c for c in report.comparisons if c.metric == metric]
    for shift, label, pick in (
        (-0.12, "Welch", lambda c: c.welch),
        (0.12, "CUPED", lambda c: c.cuped.welch),
    ):
        tests = [pick(c) for c in compared]
        ax.errorbar(
            [i + shift for i in range(len(tests))],
            [t.difference for t in tests],
            yerr=[(t.high - t.low) / 2 for t in tests],
            fmt="o",
            capsize=6,
            ms=6,
            label=label,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(compared)), [f"{c.group} − {report.control}" for c in compared])
    ax.set_xlim(-0.6, len(compared) - 0.4)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)


def _daily(report: Report) -> plt.Figure:
    figure, (rate, volume) = plt.subplots(1, 2, figsize=(11, 3.4))
    for group, days in report.daily.groupby("exp_group"):
        rate.plot(days["day"], days["hit_rate"], marker="o", label=group)
        volume.plot(days["day"], days["exposures"], marker="o", label=group)
    rate.set_title("hit rate@5 per day (share of exposures)")
    volume.set_title("exposures per day")
    for ax in (rate, volume):
        ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    return figure


def _split(report: Report) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(5, 3.4))
    srm = report.srm
    if srm is None:
        ax.text(0.5, 0.5, "split not given: not checked", ha="center", va="center")
        ax.set_axis_off()
        return figure
    names = list(srm.observed)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [srm.observed[n] for n in names], 0.4, label="observed users")
    ax.bar([i + 0.2 for i in x], [srm.expected[n] for n in names], 0.4, label="expected")
    ax.set_xticks(list(x), names)
    verdict = "MISMATCH" if srm.alarm else "ok"
    ax.set_title(
        f"split check: {verdict} (chi2 = {srm.chi2:.1f}, p = {srm.p_value:.2g})",
        color="red" if srm.alarm else "black",
    )
    ax.legend()
    return figure
