"""The time split of a world: train on early days, validate on later ones, evaluate on the last.

    | train ............ | validation (≤10 days) | evaluation (≤7 days) |
    first day                                                        last day + 1

Boundaries are midnights of world time. Models never see the evaluation window, so the offline
hit rate measured there is honest; short worlds get proportionally shorter windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from feedrank.errors import FeedrankError
from feedrank.world.layout import WorldLayout

VALID_DAYS = 10
EVAL_DAYS = 7


@dataclass(frozen=True)
class Windows:
    train_start: datetime
    valid_start: datetime
    eval_start: datetime
    eval_end: datetime

    def as_dict(self) -> dict:
        return {"training": [self.train_start.isoformat(), self.valid_start.isoformat()],
                "validation": [self.valid_start.isoformat(), self.eval_start.isoformat()],
                "evaluation": [self.eval_start.isoformat(), self.eval_end.isoformat()]}

    @classmethod
    def from_dict(cls, data: dict) -> Windows:
        (a, b), (_, c), (_, d) = data["training"], data["validation"], data["evaluation"]
        return cls(*(datetime.fromisoformat(x) for x in (a, b, c, d)))


def world_windows(layout: WorldLayout) -> Windows:
    days = sorted(date.fromisoformat(p.stem) for p in layout.feed_dir.glob("*.parquet"))
    if not days:
        raise FeedrankError(f"{layout.feed_dir}: no daily feed files (YYYY-MM-DD.parquet)")
    first, span = days[0], (days[-1] - days[0]).days + 1
    if span < 5:
        raise FeedrankError(f"{layout.feed_dir}: {span} days of feed; "
                            "a time split needs at least 5")
    evaluation = min(EVAL_DAYS, max(1, span // 10))
    validation = min(VALID_DAYS, max(1, span // 6))
    midnight = datetime.combine(first, datetime.min.time())
    at = lambda day: midnight + timedelta(days=day)  # noqa: E731
    return Windows(at(0), at(span - evaluation - validation), at(span - evaluation), at(span))
