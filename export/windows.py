"""The time split of a world, derived from when its views happened.

    | train ............ | validation | evaluation (held out) |
    first view                                      last view, rounded up

The last ~15% of the views are held out for evaluation and the ~15% before them validate, cut
at midnights (at whole hours when the log spans less than two weeks), so a 5-day log and a
7-month log both split. Windows are capped (7 days held out, 10 validating) so a long log keeps
most of its history for training, unless the capped days hold under 10,000 views (a small log,
or one whose activity fades at its end): a window then reaches back until it holds that many
(at most its ~15%), or its intervals would be too wide to tell rankers apart. Models never see
the evaluation window, so hit rates measured there are honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from feedrank.errors import FeedrankError
from feedrank.world.layout import WorldLayout

EVAL_SHARE, VALID_SHARE = 0.15, 0.15
MIN_VIEWS = 10_000  # in each of the validation and evaluation windows, where the log has them
EVAL_MAX, VALID_MAX = timedelta(days=7), timedelta(days=10)
DAILY_FROM = timedelta(days=14)  # shorter logs are cut at whole hours


@dataclass(frozen=True)
class Windows:
    train_start: datetime
    valid_start: datetime
    eval_start: datetime
    eval_end: datetime

    def as_dict(self) -> dict:
        return {
            "training": [self.train_start.isoformat(), self.valid_start.isoformat()],
            "validation": [self.valid_start.isoformat(), self.eval_start.isoformat()],
            "evaluation": [self.eval_start.isoformat(), self.eval_end.isoformat()],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Windows:
        (a, b), (_, c), (_, d) = data["training"], data["validation"], data["evaluation"]
        return cls(*(datetime.fromisoformat(x) for x in (a, b, c, d)))

    def describe(self) -> str:
        return "; ".join(f"{name} {a} .. {b}" for name, (a, b) in self.as_dict().items())


def world_windows(layout: WorldLayout) -> Windows:
    try:
        first, last, total = duckdb.execute(
            "SELECT min(timestamp), max(timestamp), count(*) FROM read_parquet($glob) "
            "WHERE action = 'view'",
            {"glob": layout.feed_glob},
        ).fetchall()[0]
    except duckdb.Error as error:
        raise FeedrankError(f"{layout.feed_dir}: no readable feed: {error}") from None
    if first is None:
        raise FeedrankError(f"{layout.feed_dir}: the feed has no views to split")
    unit = timedelta(days=1) if last - first >= DAILY_FROM else timedelta(hours=1)
    end = _floor(last, unit) + unit
    # every view is before `end`; the validation window's end needs its own count
    eval_start = _window_start(layout, end, end - EVAL_MAX, 1 - EVAL_SHARE, total, total, unit)
    before_eval = duckdb.execute(
        "SELECT count(*) FROM read_parquet($glob) WHERE action = 'view' AND timestamp < $end",
        {"glob": layout.feed_glob, "end": eval_start},
    ).fetchall()[0][0]
    valid_start = _window_start(
        layout,
        eval_start,
        eval_start - VALID_MAX,
        1 - EVAL_SHARE - VALID_SHARE,
        before_eval,
        total,
        unit,
    )
    train_start = _floor(first, unit)
    if valid_start <= train_start:
        raise FeedrankError(
            f"{layout.feed_dir}: views from {first} to {last} are too few "
            f"hours to split into training, validation and evaluation"
        )
    return Windows(train_start, valid_start, eval_start, end)


def _window_start(
    layout: WorldLayout,
    end: datetime,
    capped: datetime,
    earliest: float,
    before: int,
    total: int,
    unit: timedelta,
) -> datetime:
    """The start of the window ending at `end` (`before` views precede it): `capped`, moved
    earlier until the window holds MIN_VIEWS views, but never before the views' `earliest`
    quantile; at least one `unit`."""
    widest, narrowest = duckdb.execute(
        "SELECT quantile_disc(timestamp, [$widest, $narrowest]) FROM read_parquet($glob) "
        "WHERE action = 'view'",
        {
            "glob": layout.feed_glob,
            "widest": earliest,
            "narrowest": max(0.0, (before - MIN_VIEWS) / total),
        },
    ).fetchall()[0][0]
    start = max(_floor(widest, unit), min(capped, _floor(narrowest, unit)))
    return min(start, end - unit)


def _floor(at: datetime, unit: timedelta) -> datetime:
    midnight = datetime.combine(at.date(), datetime.min.time())
    return midnight + (at - midnight) // unit * unit
