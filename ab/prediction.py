"""Did the experiment find what the offline replay predicted? (`ab simulate`)

`feedrank evaluate` saves beside each version a replay of the A/B (ab/replay.py): for each
metric, the paired difference test − control with its 95% interval. The simulation's report
measures the same metrics on an actual split. Both are estimates from samples of users, so they
*agree* when their gap is within the 95% margin of the two errors combined (a two-sided z-test
of "same difference", standard errors read back from the intervals); the A/B *confirms* the
prediction when, in addition, both are significant with the same sign.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

from feedrank.ab.expected import EXPECTED_METRICS
from feedrank.ab.replay import REPLAY_METRICS
from feedrank.ab.report import Report
from feedrank.ab.stats import standard_error
from feedrank.server.router import parse_router

SIGNIFICANT_P = 0.05


@dataclass(frozen=True)
class Check:
    metric: str
    predicted: dict  # paired t-test of the replay (difference, low, high, p_value, ...)
    found: dict  # the A/B's Welch test

    @property
    def gap_z(self) -> float:
        """(found − predicted) in standard errors of that gap."""
        found, predicted = (
            standard_error(t["low"], t["high"], t["df"]) for t in (self.found, self.predicted)
        )
        se = np.hypot(found, predicted)
        gap = self.found["difference"] - self.predicted["difference"]
        return float(gap / se) if se > 0 else (0.0 if gap == 0 else float(np.inf))

    @property
    def agrees(self) -> bool:
        return bool(abs(self.gap_z) < stats.norm.ppf(1 - SIGNIFICANT_P / 2))

    @property
    def confirmed(self) -> bool:
        same_sign = self.found["difference"] * self.predicted["difference"] > 0
        return bool(
            same_sign
            and self.found["p_value"] < SIGNIFICANT_P
            and self.predicted["p_value"] < SIGNIFICANT_P
        )

    def as_dict(self) -> dict:
        return asdict(self) | {
            "gap_z": self.gap_z,
            "agrees": self.agrees,
            "confirmed": self.confirmed,
        }


def load_prediction(repository: Path, group: str = "test") -> tuple[dict | None, str]:
    """The replay saved with the version the router serves to `group`, or None and why not.
    It must have been made for the very versions the router serves to both groups."""
    config = parse_router((repository / "router.toml").read_text(), lambda model, version: None)
    served = {g.name: (g.model, g.version) for g in config.groups}
    if {name: model for name, (model, _) in served.items()} != {"control": "control", group: group}:
        return None, (
            f"the replay compares the models control and {group}; the router serves {served}"
        )
    model, version = served[group]
    path = repository / model / str(version) / "evaluation.json"
    if not path.is_file():
        return None, f"{path} not found: run `feedrank evaluate`"
    evaluation = json.loads(path.read_text())
    evaluated = {row["ranker"]: row["version"] for row in evaluation["rows"]}
    if any(evaluated.get(m) != v for m, v in served.values()):
        return None, (
            f"{path} evaluated {evaluated.get('control')} / {evaluated.get('test')}, "
            f"the router serves {served}: run `feedrank evaluate`"
        )
    if not evaluation.get("replay"):
        return None, f"{path} has no replay: run `feedrank evaluate --replay-users N`"
    return evaluation["replay"], str(path)


def checks(replay: dict, report: Report, expected: dict | None, group: str = "test") -> list[Check]:
    """One check per metric the replay predicts and the A/B measures (the expected metrics
    only in a simulation, which knows the ground truth)."""
    found = {c.metric: c.welch.as_dict() for c in report.comparisons if c.group == group}
    if expected is not None:
        found |= {m: expected[m]["differences"][group] for m in EXPECTED_METRICS}
    predicted = replay["differences"][group]  # a replay saved earlier may lack a newer metric
    return [
        Check(metric, predicted[metric], found[metric])
        for metric in REPLAY_METRICS
        if metric in found and metric in predicted
    ]


def prediction_table(results: list[Check], source: str) -> Table:
    table = Table(title=f"The A/B against the offline prediction ({source})")
    for column in ("metric", "predicted (replay)", "found (A/B)", "gap (z)", "agrees", "confirmed"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for c in results:
        table.add_row(
            REPLAY_METRICS[c.metric],
            _difference(c.predicted),
            _difference(c.found),
            f"{c.gap_z:+.2f}",
            "yes" if c.agrees else "NO",
            "yes" if c.confirmed else "no",
        )
    return table


def report_prediction(
    repository: Path, report: Report, expected: dict | None, out: Path, console: Console
) -> list[Check]:
    """Print the comparison and save it as OUT/prediction.json; nothing if no prediction."""
    replay, source = load_prediction(repository)
    if replay is None:
        console.print(f"no offline prediction to compare with: {source}")
        return []
    results = checks(replay, report, expected)
    console.print(prediction_table(results, source))
    (out / "prediction.json").write_text(
        json.dumps(
            {
                "source": source,
                "replay": {k: replay[k] for k in ("days", "users", "seed")},
                "checks": [c.as_dict() for c in results],
            },
            indent=1,
        )
    )
    return results


def _difference(t: dict) -> str:
    return f"{t['difference']:+.4f} [{t['low']:+.4f}, {t['high']:+.4f}] p={t['p_value']:.2g}"
