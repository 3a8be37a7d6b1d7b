"""The HTML report: the tables of `report.py` and the PNG figures beside it in the same folder."""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path
from string import Template

from feedrank.ab import stats
from feedrank.ab.covariate import NAME as COVARIATE
from feedrank.ab.plots import write_plots
from feedrank.ab.report import METRICS, Report, counts, width_ratio


def write_html(report: Report, out: Path) -> Path:
    """Write the figures and `report.html` into `out`; return the HTML path."""
    plots = write_plots(report, out)
    template = Template(files("feedrank.ab").joinpath("report.html").read_text())
    page = template.substitute(
        method=escape(
            f"Likes count when they follow the exposure within {report.window_s} s. "
            f"{report.as_dict()['statistics']}."
        ),
        control=escape(report.control),
        srm=_srm(report),
        groups=_groups(report),
        comparisons=_comparisons(report) + _cuped(report),
        notes="".join(f"<p>note: {escape(n)}</p>" for n in report.notes),
        **{f"{name}_png": path.name for name, path in plots.items()},
    )
    path = out / "report.html"
    path.write_text(page)
    return path


def add_section(page: Path, title: str, body: str) -> None:
    """Append a section to a written report page (results computed after the report's own)."""
    text = page.read_text()
    page.write_text(text.replace("</body>", f"<h2>{escape(title)}</h2>{body}</body>", 1))


def table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr class='{c}'>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>"
        for row, c in zip(rows, classes or [""] * len(rows))
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _groups(report: Report) -> str:
    rows = [
        [
            g.name,
            f"{g.users:,}",
            f"{g.exposures:,}",
            *(
                f"{g.metrics[m].mean:.4f} [{g.metrics[m].low:.4f}, {g.metrics[m].high:.4f}]"
                for m in METRICS
            ),
        ]
        for g in report.groups
    ]
    return table(["group", "users", "exposures", *METRICS.values()], rows)


def _comparisons(report: Report) -> str:
    rows = [
        [
            c.group,
            METRICS[c.metric],
            f"{c.control:.4f}",
            f"{c.test:.4f}",
            f"{c.welch.difference:+.4f}",
            f"{c.relative:+.1%}",
            f"[{c.welch.low:+.4f}, {c.welch.high:+.4f}]",
            f"{c.welch.p_value:.3g}",
            f"[{c.bootstrap[0]:+.4f}, {c.bootstrap[1]:+.4f}]",
            f"±{c.mde:.4f}",
        ]
        for c in report.comparisons
    ]
    classes = ["significant" if c.welch.p_value < 0.05 else "" for c in report.comparisons]
    return table(
        [
            "group",
            "metric",
            report.control,
            "group value",
            "difference",
            "relative",
            "95% CI (Welch)",
            "p-value",
            "95% CI (bootstrap)",
            "MDE (80% power)",
        ],
        rows,
        classes,
    )


def _cuped(report: Report) -> str:
    """The CUPED table under the decision table (the page template has no slot of its own)."""
    pre = report.pre_period
    if pre is None:
        return ""
    rows = [
        [
            c.group,
            METRICS[c.metric],
            f"{cuped.welch.difference:+.4f}",
            f"[{cuped.welch.low:+.4f}, {cuped.welch.high:+.4f}]",
            f"{cuped.welch.p_value:.3g}",
            f"{cuped.theta:.3g}",
            f"{cuped.variance_reduction:.1%}",
            f"{width_ratio(c):.2f}",
        ]
        for c in report.comparisons
        for cuped in [c.require_cuped()]
    ]
    text = (
        f"CUPED (second opinion; the Welch test above decides): covariate {COVARIATE} over "
        f"the {pre.lookback_days} days before {pre.start}; {pre.users_with_views:,} of "
        f"{len(pre.users):,} users have views there, the others get their mean."
    )
    return f"<p>{escape(text)}</p>" + table(
        [
            "group",
            "metric",
            "difference",
            "95% CI (CUPED)",
            "p-value",
            "theta",
            "variance reduction",
            "CI width / Welch",
        ],
        rows,
    )


def _srm(report: Report) -> str:
    srm = report.srm
    if srm is None:
        return "<p>Sample ratio not checked: no split given.</p>"
    text = (
        f"users per group {counts(srm.observed)}, expected {counts(srm.expected)}: "
        f"chi2 = {srm.chi2:.2f}, p = {srm.p_value:.3g}"
    )
    if srm.alarm:
        return (
            f"<p class='alarm'>SAMPLE RATIO MISMATCH (p &lt; {stats.SRM_ALARM_P}): "
            f"{escape(text)}. The split is broken; do not trust the differences.</p>"
        )
    return f"<p class='ok'>Sample ratio ok: {escape(text)}.</p>"
