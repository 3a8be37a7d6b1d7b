"""Exposures joined with the likes that followed them, summed per user (DuckDB).

A like counts for an exposure when the same user liked one of the posts shown (the first `k` of
its list) at or after the request moment and before the window closes. Per user: exposures,
exposures with at least one such like (hits), posts shown, shown posts liked, and distinct like
events attributed to any of the user's exposures (a like is counted once even when two
overlapping exposures showed the post).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from feedrank.errors import FeedrankError
from feedrank.server import events as server_events
from feedrank.server.exposure_log import log_files as exposure_files
from feedrank.server.exposure_log import query as exposure_query
from feedrank.server.exposure_log import sql_paths
from feedrank.world.layout import WorldLayout

TOP_K = 5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_SHOWN = """
CREATE TEMP TABLE shown AS
SELECT request_id, user_id, exp_group, requested_time, unnest(post_ids[1:$k]) AS post_id
FROM exposures;
CREATE TEMP TABLE matched AS
SELECT s.request_id, s.user_id, s.exp_group, s.post_id, l.timestamp AS liked_at
FROM shown s JOIN likes l ON l.user_id = s.user_id AND l.post_id = s.post_id
 AND l.timestamp >= s.requested_time AND l.timestamp < s.requested_time + to_seconds($window);
"""

_PER_EXPOSURE = """
SELECT e.request_id, e.user_id, e.exp_group, e.requested_time,
       least(len(e.post_ids), $k) AS shown,
       coalesce(m.liked_shown, 0) AS liked_shown
FROM exposures e LEFT JOIN (
  SELECT request_id, count(DISTINCT post_id) AS liked_shown FROM matched GROUP BY request_id
) m USING (request_id)
"""

PER_USER = f"""
WITH per_exposure AS ({_PER_EXPOSURE}),
attributed AS (
  SELECT user_id, exp_group, count(*) AS likes
  FROM (SELECT DISTINCT user_id, exp_group, post_id, liked_at FROM matched) GROUP BY ALL)
SELECT exp_group, user_id, count(*) AS exposures, count_if(liked_shown > 0) AS hits,
       sum(shown) AS shown, sum(liked_shown) AS liked_shown,
       coalesce(any_value(a.likes), 0) AS likes
FROM per_exposure LEFT JOIN attributed a USING (user_id, exp_group)
GROUP BY exp_group, user_id ORDER BY exp_group, user_id
"""

DAILY = f"""
SELECT exp_group, CAST(requested_time AS DATE) AS day, count(*) AS exposures,
       count(DISTINCT user_id) AS users, avg(CAST(liked_shown > 0 AS DOUBLE)) AS hit_rate,
       sum(liked_shown) / nullif(sum(shown), 0) AS ctr
FROM ({_PER_EXPOSURE}) GROUP BY ALL ORDER BY exp_group, day
"""


def parse_window(text: str) -> int:
    """`1h`, `30m`, `90s`, `2d` (or plain seconds) -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match[1]) == 0:
        raise FeedrankError(
            f"--window: expected a positive duration like 1h, 30m, 90s, got {text!r}"
        )
    return int(match[1]) * _UNITS[match[2] or "s"]


def connect_log(log_dirs: list[Path], like_files: list[Path]) -> duckdb.DuckDBPyConnection:
    """A connection with views `exposures` (the log folders, read together) and `likes` (of
    the feed event files; none: no likes)."""
    for log_dir in log_dirs:
        if not exposure_files(log_dir):
            raise FeedrankError(f"{log_dir}: no exposure log files (exposures-*.jsonl)")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW exposures AS {exposure_query(*log_dirs)}")
    events = (
        events_query(like_files)
        if like_files  # none yet (a live experiment before its first like): no likes
        else "SELECT NULL::BIGINT AS user_id, NULL::BIGINT AS post_id, "
        "NULL::TIMESTAMP AS timestamp, NULL::VARCHAR AS action WHERE false"
    )
    con.execute(
        "CREATE VIEW likes AS SELECT user_id, post_id, timestamp "
        f"FROM ({events}) WHERE action = 'like'"
    )
    return con


def events_query(files: list[Path]) -> str:
    """feed_data rows from Parquet files (a world's feed, `ab simulate`'s events) or from a
    server's events log (`events-*.jsonl`, what clients posted to /feed/events)."""
    logged = [p for p in files if p.suffix == ".jsonl"]
    if logged and len(logged) < len(files):
        raise FeedrankError("feed events: give Parquet files or an events log, not both")
    if logged:
        return server_events.query(logged)
    return f"SELECT * FROM read_parquet({sql_paths(files)})"


def connect_frames(exposures: pd.DataFrame, likes: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """The same views from in-memory frames (exposure-log columns; feed_data rows)."""
    con = duckdb.connect()
    con.register("exposure_frame", pa.Table.from_pandas(exposures, preserve_index=False))
    con.register("event_frame", likes)
    con.execute("CREATE VIEW exposures AS SELECT * FROM exposure_frame")
    con.execute(
        "CREATE VIEW likes AS SELECT user_id, post_id, timestamp FROM event_frame "
        "WHERE action = 'like'"
    )
    return con


def like_files(world: Path | None, events: list[Path] | None) -> list[Path]:
    """The `events` folders' feed events when given (Parquet, or servers' events logs: the
    world's own feed in the same days holds likes of other showings, which must not be credited
    to the experiment), else the world's feed_data."""
    folders = events if events else [WorldLayout(world).feed_dir] if world else []
    if not folders:
        raise FeedrankError("give --world (likes from its feed_data) or --events")
    files = []
    for folder in folders:
        found = sorted(folder.glob("*.parquet")) or server_events.log_files(folder)
        if not found:
            raise FeedrankError(
                f"{folder}: no feed events (Parquet files, or a server's events-*.jsonl)"
            )
        files += found
    return files


def attribute(
    con: duckdb.DuckDBPyConnection, window_s: int, k: int = TOP_K
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-user table, daily per-group table) from views `exposures` and `likes`."""
    con.execute(_SHOWN.replace("$k", str(int(k))).replace("$window", str(int(window_s))))
    params = {"k": k}
    per_user = con.execute(PER_USER, params).df()
    daily = con.execute(DAILY, params).df()
    con.execute("DROP TABLE shown; DROP TABLE matched")
    return per_user, daily
