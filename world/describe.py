"""`feedrank world describe`: what a world holds, in a few tables (computed with DuckDB)."""

from __future__ import annotations

import json

import duckdb
from rich.console import Console
from rich.table import Table

from feedrank.errors import FeedrankError
from feedrank.world.layout import WorldLayout


def summarize(layout: WorldLayout) -> dict:
    """Row counts, date range, like rates, topic shares, top countries, users with history."""
    if not layout.manifest.exists():
        raise FeedrankError(f"{layout.root} is not a world (no world.json)")
    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")  # keeps the output to the tables
    db.execute(f"""CREATE VIEW feed AS SELECT * FROM read_parquet('{layout.feed_glob}');
                   CREATE VIEW users AS SELECT * FROM '{layout.users}';
                   CREATE VIEW posts AS SELECT * FROM '{layout.posts}';""")

    def one(sql: str) -> tuple:
        row = db.execute(sql).fetchone()
        assert row is not None, f"no row from: {sql}"  # each query here is an aggregate
        return row

    feed = one("""SELECT count(*) FILTER (action = 'view'), count(*) FILTER (action = 'like'),
                         min(timestamp), max(timestamp), avg(target) FILTER (action = 'view')
                  FROM feed""")
    history = one("""SELECT count(DISTINCT user_id),
                            count(DISTINCT user_id) FILTER (action = 'like') FROM feed""")
    return {
        "manifest": json.loads(layout.manifest.read_text()),
        "rows": {
            "user_data": one("SELECT count(*) FROM users")[0],
            "post_text_df": one("SELECT count(*) FROM posts")[0],
            "feed_data": feed[0] + feed[1],
            "views": feed[0],
            "likes": feed[1],
        },
        "first": str(feed[2]),
        "last": str(feed[3]),
        "like_rate": feed[4],
        "like_rate_by_month": db.execute(
            """SELECT strftime(timestamp, '%Y-%m'), avg(target) FROM feed WHERE action = 'view'
               GROUP BY 1 ORDER BY 1"""
        ).fetchall(),
        "topics": db.execute(
            """SELECT topic, count(*), count(*) / sum(count(*)) OVER () FROM posts
               GROUP BY 1 ORDER BY 2 DESC, 1"""
        ).fetchall(),
        "countries": db.execute(
            """SELECT country, count(*) FROM users GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"""
        ).fetchall(),
        "users_with_views": history[0],
        "users_with_likes": history[1],
        "posts_shown": one("SELECT count(DISTINCT post_id) FROM feed")[0],
    }


def render(summary: dict, console: Console) -> None:
    rows, m = summary["rows"], summary["manifest"]
    main = Table(title=f"world ({m['kind']}{', seed ' + str(m['seed']) if 'seed' in m else ''})")
    main.add_column("measure")
    main.add_column("value", justify="right")
    for name, value in [
        ("users (user_data)", f"{rows['user_data']:,}"),
        ("posts (post_text_df)", f"{rows['post_text_df']:,}"),
        ("feed rows (feed_data)", f"{rows['feed_data']:,}"),
        ("  views / likes", f"{rows['views']:,} / {rows['likes']:,}"),
        ("date range", f"{summary['first']} .. {summary['last']}"),
        ("like rate per view", _rate(summary["like_rate"])),
        *((f"  like rate {month}", _rate(rate)) for month, rate in summary["like_rate_by_month"]),
        ("users with views", _share(summary["users_with_views"], rows["user_data"])),
        ("users with likes", _share(summary["users_with_likes"], rows["user_data"])),
        ("posts ever shown", _share(summary["posts_shown"], rows["post_text_df"])),
        ("ground truth", "yes" if m.get("ground_truth") else "no"),
        *([("  posts held back", f"{m['held_back_posts']:,}")] if "held_back_posts" in m else []),
    ]:
        main.add_row(name, value)
    topics = Table(title="topics")
    for column in ("topic", "posts", "share"):
        topics.add_column(column, justify="left" if column == "topic" else "right")
    for topic, n, share in summary["topics"]:
        topics.add_row(topic, f"{n:,}", f"{share:.1%}")
    countries = Table(title="top countries")
    countries.add_column("country")
    countries.add_column("users", justify="right")
    for country, n in summary["countries"]:
        countries.add_row(country, f"{n:,}")
    for table in (main, topics, countries):
        console.print(table)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"
