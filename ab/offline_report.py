"""Where evaluation results go: a rich table, and JSON beside each evaluated model version."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from feedrank.ab.evaluation import Evaluation
from feedrank.ab.replay import REPLAY_METRICS, Replay
from feedrank.export.hit_rate import Rate
from feedrank.export.publish import METADATA, read_json, write_json

EVALUATION = "evaluation.json"


def evaluation_table(evaluation: Evaluation) -> Table:
    windows = "; ".join(f"{name} {a} .. {b}" for name, (a, b) in evaluation.windows.items())
    table = Table(
        title=f"Offline evaluation: {evaluation.requests:,} of {evaluation.sessions:,} "
        f"logged sessions ({evaluation.users:,} users) in the held-out window, "
        f"a hit = a like within {evaluation.horizon_hours:g} h",
        caption=f"trending = most liked in the last {evaluation.trending_hours} h "
        f"(chosen on validation). Windows: {windows}",
    )
    simulated = any(r.simulated_hit_rate is not None for r in evaluation.rows)
    columns = [
        "ranker",
        "version",
        "hit rate@5 [95% CI]",
        "− popularity [95% CI]",
        "− trending [95% CI]",
    ]
    columns += ["simulated hit rate@5", "share of oracle lift"] if simulated else []
    for column in columns:
        table.add_column(
            column, justify="left" if column == "ranker" else "right", no_wrap=column == "ranker"
        )
    for row in evaluation.rows:
        cells = [
            row.ranker,
            "" if row.version is None else str(row.version),
            _rate(row.hit_rate),
            _rate(row.vs_popularity, signed=True),
            _rate(row.vs_trending, signed=True),
        ]
        if simulated:
            cells += [
                f"{row.simulated_hit_rate:.4f}",
                f"{evaluation.oracle_lift_share(row.ranker):.0%}",
            ]
        table.add_row(*cells)
    return table


def _rate(rate: Rate, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{rate.mean:{sign}.4f} [{rate.low:{sign}.4f}, {rate.high:{sign}.4f}]"


def replay_table(replay: Replay) -> Table:
    table = Table(
        title=f"Offline A/B replay: {replay.users:,} users asking for feeds, "
        f"{replay.requests:,} feed requests, {replay.days[0]} .. "
        f"{replay.days[-1]}, seed {replay.seed} (paired t-test, 95% CI)"
    )
    for column in ("metric", *replay.means, *(f"{m} − control" for m in replay.differences)):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, label in REPLAY_METRICS.items():
        table.add_row(
            label,
            *(f"{means[metric]:.4f}" for means in replay.means.values()),
            *(
                f"{d[metric]['difference']:+.4f} [{d[metric]['low']:+.4f}, "
                f"{d[metric]['high']:+.4f}] p={d[metric]['p_value']:.2g}"
                for d in replay.differences.values()
            ),
        )
    return table


def save_evaluation(evaluation: Evaluation, version_dirs: list[Path]) -> None:
    data = evaluation.as_dict()
    for folder in version_dirs:
        write_json(folder / EVALUATION, data)
        write_json(folder / METADATA, read_json(folder / METADATA) | {"evaluation": data})


def saved_evaluation(version_dir: Path) -> Evaluation | None:
    """The evaluation saved beside a version, if any (older files without `inputs` are
    returned too: their inputs match nothing, so they are redone)."""
    path = version_dir / EVALUATION
    return Evaluation.from_dict(read_json(path)) if path.is_file() else None
