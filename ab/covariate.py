"""The CUPED covariate: each experiment user's like rate in the weeks before the experiment.

The experiment starts at the earliest `requested_time` of the exposure log; the covariate reads
the world's feed_data in [start - lookback, start), so nothing the groups were shown can move it
and adjusting by it cannot bias the difference. Per user: views = `view` rows, like rate =
sum(target) / views. A user of the experiment without a view in that period gets the mean like
rate of the experiment's users who have views (both groups pooled): any constant keeps CUPED
unbiased, and the mean puts them at the centre, where the adjustment leaves their values as they
are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

LOOKBACK_DAYS = 28
NAME = "pre-period like rate (liked views / views)"

# A rate, not a like count: hit rate and CTR are rates, and a count would mostly measure how much
# a user was shown before, which says little about how often they like what they are shown.
_PER_USER = """
WITH pre AS (
  SELECT user_id, count(*) AS views, sum(target) / count(*) AS like_rate
  FROM read_parquet($files)
  WHERE action = 'view' AND timestamp < $start AND timestamp >= $start - to_days($days)
  GROUP BY user_id)
SELECT user_id, coalesce(views, 0) AS views,
       coalesce(like_rate, avg(like_rate) OVER ()) AS like_rate
FROM (SELECT DISTINCT user_id FROM exposures) LEFT JOIN pre USING (user_id)
ORDER BY user_id
"""


@dataclass(frozen=True)
class PrePeriod:
    """Per experiment user (index user_id): `views` and `like_rate` before `start`."""

    users: pd.DataFrame
    start: pd.Timestamp
    lookback_days: int

    @property
    def users_with_views(self) -> int:
        return int((self.users["views"] > 0).sum())

    def as_dict(self) -> dict:
        with_views = self.users["views"] > 0
        fill = self.users.loc[with_views, "like_rate"].mean() if with_views.any() else None
        return {
            "covariate": NAME,
            "start": str(self.start),
            "lookback_days": self.lookback_days,
            "users": len(self.users),
            "users_with_views": self.users_with_views,
            "fill_value_without_views": fill,
        }


def pre_period(
    con: duckdb.DuckDBPyConnection, feed_files: list[Path], lookback_days: int = LOOKBACK_DAYS
) -> PrePeriod:
    """The covariate of every user in the view `exposures` (see `attribution.connect_log`)."""
    start = con.execute("SELECT min(requested_time) FROM exposures").fetchall()[0][0]
    users = con.execute(
        _PER_USER, {"files": [str(p) for p in feed_files], "start": start, "days": lookback_days}
    ).df()
    return PrePeriod(users.set_index("user_id"), pd.Timestamp(start), lookback_days)
