"""Fresh content in a simulated experiment: posts published while it runs, and how each group's
model treats them.

`ab simulate --new-posts-per-day N` publishes N of the posts the world held back on each of its
days (`POST /posts`, at times drawn like the users' activity), each the moment the simulated
clock reaches it: every request at or after that time has the post among its candidates, no
earlier one does. The held-back posts carry their ground truth, so the simulated users like them
exactly as they like the catalogue's.

The report per group: the fresh posts' share of the posts shown and of the likes, their CTR
beside the catalogue's, how many of the fresh posts the group showed at all and how long after
publication it first did; and each group's shares minus control's, with 95% intervals from a
bootstrap over users (users are the randomisation unit). Beside them, the oracle's share: the
same requests ranked by the true like probability over the same candidates (the catalogue and
the posts released by then; the user's earlier likes are not excluded), which is what a ranker
that knew every post at once would give fresh content.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from html import escape

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from feedrank.ab import html
from feedrank.ab.stats import BOOTSTRAP_REPS, LEVEL
from feedrank.errors import FeedrankError
from feedrank.world import policy
from feedrank.world.ground_truth import GroundTruth

POST_COLUMNS = ["post_id", "text", "topic"]


@dataclass(frozen=True)
class Releases:
    """Held-back posts (their ground truth columns kept) with `released_at`, in time order."""

    posts: pd.DataFrame

    @classmethod
    def plan(
        cls, held_back: pd.DataFrame, days: np.ndarray, per_day: int, rng: np.random.Generator
    ) -> Releases:
        needed = per_day * len(days)
        if needed > len(held_back):
            raise FeedrankError(
                f"--new-posts-per-day {per_day} over {len(days)} days needs {needed} posts; the "
                f"world holds back {len(held_back)} (`feedrank world generate --held-back-posts`)"
            )
        posts = held_back.iloc[rng.permutation(len(held_back))[:needed]].reset_index(drop=True)
        seconds = policy.sample_hours(needed, rng) * 3600 + rng.integers(0, 3600, needed)
        day = np.repeat(np.asarray(days, "datetime64[D]"), per_day).astype("datetime64[s]")
        posts["released_at"] = (day + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
        return cls(posts.sort_values("released_at", kind="stable", ignore_index=True))

    @cached_property
    def times(self) -> np.ndarray:
        return self.posts["released_at"].to_numpy("datetime64[us]")

    def due(self, at: np.datetime64) -> int:
        """How many releases are due by the simulated time `at`."""
        return int(np.searchsorted(self.times, at, side="right"))

    def batch(self, start: int, end: int) -> list[dict]:
        """Releases [start, end) as `POST /posts` rows."""
        return self.posts.iloc[start:end][POST_COLUMNS].to_dict("records")


def fresh_report(
    views: pd.DataFrame,
    releases: Releases,
    groups: pd.Series,
    *,
    control: str = "control",
    seed: int = 0,
) -> dict:
    """Per group and against control: how much of the feed and of the likes fresh posts took.
    `views`: user_id, post_id, timestamp, liked (ab simulate's shown posts)."""
    released = releases.posts.set_index("post_id")["released_at"]
    fresh = views["post_id"].isin(released.index)
    frame = views.assign(
        group=groups.reindex(views["user_id"]).to_numpy(),
        fresh=fresh,
        fresh_liked=fresh & views["liked"],
    )
    per_user = frame.groupby(["group", "user_id"]).agg(
        shown=("fresh", "size"),
        fresh_shown=("fresh", "sum"),
        likes=("liked", "sum"),
        fresh_likes=("fresh_liked", "sum"),
    )
    rng = np.random.default_rng(seed)
    result: dict = {"released": len(released), "groups": {}, "differences": {}}
    for name, users in per_user.groupby(level="group"):
        shown = frame[(frame["group"] == name) & frame["fresh"]]
        first = shown.groupby("post_id")["timestamp"].min()
        waited_h = (first - released.reindex(first.index)).dt.total_seconds() / 3600
        result["groups"][name] = {
            "users": len(users),
            "shown": int(users["shown"].sum()),
            "fresh_shown": int(users["fresh_shown"].sum()),
            "share_of_shown": _ratio(users, "fresh_shown", "shown"),
            "likes": int(users["likes"].sum()),
            "fresh_likes": int(users["fresh_likes"].sum()),
            "share_of_likes": _ratio(users, "fresh_likes", "likes"),
            "fresh_ctr": _ratio(users, "fresh_likes", "fresh_shown"),
            "catalogue_ctr": _safe(
                (users["likes"] - users["fresh_likes"]).sum(),
                (users["shown"] - users["fresh_shown"]).sum(),
            ),
            "fresh_posts_shown": len(first),
            "median_hours_to_first_show": float(waited_h.median()) if len(first) else None,
        }
    if control in result["groups"]:
        base = per_user.loc[control]
        for name, users in per_user.groupby(level="group"):
            if name != control:
                result["differences"][name] = {
                    metric: _difference(base, users.loc[name], num, den, rng)
                    for metric, num, den in (
                        ("share_of_shown", "fresh_shown", "shown"),
                        ("share_of_likes", "fresh_likes", "likes"),
                    )
                }
    return result


def oracle_share(
    truth: GroundTruth,
    catalogue: np.ndarray,
    releases: Releases,
    requests: pd.DataFrame,
    *,
    slots: int,
    most: int = 20_000,
    seed: int = 0,
) -> dict:
    """The fresh posts' share of the oracle's top `slots` and of its expected likes, over at
    most `most` of `requests` (user_id, timestamp), drawn at random."""
    rng = np.random.default_rng(seed)
    if len(requests) > most:
        requests = requests.iloc[np.sort(rng.choice(len(requests), most, replace=False))]
    fresh = releases.posts["post_id"].to_numpy(np.int64)
    posts = np.concatenate([catalogue, fresh])
    released = releases.times
    shown = fresh_shown = 0
    expected = fresh_expected = 0.0
    for start in range(0, len(requests), 500):
        chunk = requests.iloc[start : start + 500]
        times = chunk["timestamp"].to_numpy("datetime64[us]")[:, None]
        p = truth.like_probability(chunk["user_id"].to_numpy()[:, None], posts[None, :], times)
        p[:, catalogue.size :][released[None, :] > times] = -1.0  # not published yet
        top = np.argpartition(-p, slots - 1, axis=1)[:, :slots]
        chosen = np.take_along_axis(p, top, 1)
        is_fresh = top >= catalogue.size
        shown, fresh_shown = shown + top.size, fresh_shown + int(is_fresh.sum())
        expected, fresh_expected = expected + chosen.sum(), fresh_expected + chosen[is_fresh].sum()
    return {
        "requests": len(requests),
        "share_of_shown": fresh_shown / shown,
        "share_of_expected_likes": float(fresh_expected / expected),
    }


def _safe(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def _ratio(users: pd.DataFrame, numerator: str, denominator: str) -> float | None:
    return _safe(users[numerator].sum(), users[denominator].sum())


def _resampled_ratios(users: pd.DataFrame, num: str, den: str, rng) -> np.ndarray:
    """A group's ratio of sums over users resampled with replacement, BOOTSTRAP_REPS times."""
    picks = rng.integers(0, len(users), (BOOTSTRAP_REPS, len(users)))
    nums, dens = users[num].to_numpy(np.float64), users[den].to_numpy(np.float64)
    totals = dens[picks].sum(axis=1)
    return np.divide(
        nums[picks].sum(axis=1), totals, out=np.full(len(totals), np.nan), where=totals > 0
    )


def _difference(control: pd.DataFrame, other: pd.DataFrame, num: str, den: str, rng) -> dict:
    """other's ratio of sums minus control's, with a percentile bootstrap interval over users."""
    base, value = _ratio(control, num, den), _ratio(other, num, den)
    if base is None or value is None:
        return {"difference": None, "low": None, "high": None}
    diff = _resampled_ratios(other, num, den, rng) - _resampled_ratios(control, num, den, rng)
    tail = (1 - LEVEL) / 2
    low, high = np.nanquantile(diff, [tail, 1 - tail])
    return {"difference": value - base, "low": float(low), "high": float(high)}


COLUMNS = ["group", "shown", "share of shown", "likes", "share of likes", "CTR fresh"]
COLUMNS += ["CTR catalogue", "fresh posts shown", "median h to first show"]


def print_fresh(result: dict, console: Console) -> None:
    table = Table(title=_title(result))
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    for row in _rows(result):
        table.add_row(*row)
    console.print(table)
    for line in _lines(result):
        console.print(f"  {line}", highlight=False)


def fresh_html(result: dict) -> tuple[str, str]:
    """The report page's section: (title, body)."""
    body = html.table(COLUMNS, _rows(result))
    return _title(result), body + "".join(f"<p>{escape(line)}</p>" for line in _lines(result))


def _title(result: dict) -> str:
    return f"fresh posts: {result['released']} published during the experiment"


def _rows(result: dict) -> list[list[str]]:
    return [
        [
            name,
            f"{g['fresh_shown']:,} / {g['shown']:,}",
            _pct(g["share_of_shown"]),
            f"{g['fresh_likes']:,} / {g['likes']:,}",
            _pct(g["share_of_likes"]),
            _num(g["fresh_ctr"]),
            _num(g["catalogue_ctr"]),
            f"{g['fresh_posts_shown']} / {result['released']}",
            _num(g["median_hours_to_first_show"], ".1f"),
        ]
        for name, g in result["groups"].items()
    ]


def _lines(result: dict) -> list[str]:
    lines = []
    oracle = result.get("oracle")
    if oracle is not None:
        lines.append(
            f"oracle (true like probability, same candidates, {oracle['requests']:,} of the "
            f"requests): fresh posts {_pct(oracle['share_of_shown'])} of shown, "
            f"{_pct(oracle['share_of_expected_likes'])} of expected likes"
        )
    for name, metrics in result["differences"].items():
        for metric, d in metrics.items():
            if d["difference"] is not None:
                lines.append(
                    f"{name} − control, fresh {metric.replace('_', ' ')}: "
                    f"{d['difference'] * 100:+.2f} points, 95% CI "
                    f"[{d['low'] * 100:+.2f}, {d['high'] * 100:+.2f}]"
                )
    return lines


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _num(value: float | None, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)
