"""Where evaluation results go: a rich table, and JSON beside each evaluated model version."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from feedrank.export.evaluate import Evaluation
from feedrank.export.replay import REPLAY_METRICS, Replay
from feedrank.export.publish import METADATA, read_json, write_json

EVALUATION = "evaluation.json"


def evaluation_table(evaluation: Evaluation) -> Table:
    start, end = evaluation.window
    table = Table(title=f"Offline evaluation: window {start} .. {end}, ranked at "
                        f"{evaluation.requested_at}, "
                        f"{evaluation.users_evaluated} of {evaluation.users_active} active users")
    columns = ("ranker", "version", "hit rate@5", "simulated hit rate@5", "share of oracle lift")
    for column in columns:
        table.add_column(column, justify="left" if column == "ranker" else "right")
    for row in evaluation.rows:
        table.add_row(row.ranker, "" if row.version is None else str(row.version),
                      f"{row.hit_rate:.4f}", f"{row.simulated_hit_rate:.4f}",
                      f"{evaluation.oracle_lift_share(row.ranker):.0%}")
    return table


def replay_table(replay: Replay) -> Table:
    table = Table(title=f"Offline A/B replay: {replay.users:,} users asking for feeds, "
                        f"{replay.requests:,} feed requests, {replay.days[0]} .. "
                        f"{replay.days[-1]}, seed {replay.seed} (paired t-test, 95% CI)")
    for column in ("metric", *replay.means, *(f"{m} − control" for m in replay.differences)):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, label in REPLAY_METRICS.items():
        table.add_row(label, *(f"{means[metric]:.4f}" for means in replay.means.values()),
                      *(f"{d[metric]['difference']:+.4f} [{d[metric]['low']:+.4f}, "
                        f"{d[metric]['high']:+.4f}] p={d[metric]['p_value']:.2g}"
                        for d in replay.differences.values()))
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
