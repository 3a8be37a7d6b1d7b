"""`feedrank world import --dsn` at growing feed sizes: does its memory stay bounded?

For each size, a world is generated (course-sized users and posts, N views) into a cache
folder, its three tables are loaded into a throwaway PostgreSQL server (COPY, streamed), and
`feedrank world import --dsn` runs as its own process: wall time and peak resident memory
(GNU time's maximum RSS), with the rows checked against the source.

    .venv/bin/python benchmarks/postgres_import.py --views 1000000,4000000,16000000
    .venv/bin/python benchmarks/postgres_import.py --quick          # 20,000 views, seconds

Writes benchmarks/results/postgres_import{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import psycopg
from postgres_cluster import PostgresCluster

from record import machine, save

HERE = Path(__file__).parent
CACHE = HERE.parent / ".cache" / "postgres_import"
SCHEMA = """
CREATE TABLE user_data (user_id bigint, gender integer, age integer, country text, city text,
                        exp_group integer, os text, source text);
CREATE TABLE post_text_df (post_id bigint, text text, topic text);
CREATE TABLE feed_data (timestamp timestamp, user_id bigint, post_id bigint, action text,
                        target integer);
"""
BLOCK = 1 << 20


def world(views: int, users: int, posts: int) -> Path:
    path = CACHE / f"world-{users}-{posts}-{views}"
    if not (path / "world.json").exists():
        subprocess.run(
            [sys.executable, "-m", "feedrank", "world", "generate", "--out", str(path)]
            + ["--users", str(users), "--posts", str(posts), "--views", str(views), "--force"],
            check=True,
            capture_output=True,
        )
    return path


def load(dsn: str, source: Path, scratch: Path) -> float:
    """The world's tables into PostgreSQL through CSV files, streamed block by block."""
    started = time.perf_counter()
    tables = {
        "user_data": source / "user_data.parquet",
        "post_text_df": source / "post_text_df.parquet",
        "feed_data": source / "feed_data" / "*.parquet",
    }
    with psycopg.connect(dsn) as connection:
        connection.execute(SCHEMA.encode())
        for table, files in tables.items():
            csv = scratch / f"{table}.csv"
            duckdb.sql(f"COPY (SELECT * FROM read_parquet('{files}')) TO '{csv}' (HEADER)")
            with (
                csv.open("rb") as rows,
                connection.cursor().copy(
                    f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)".encode()
                ) as copy,
            ):
                while block := rows.read(BLOCK):
                    copy.write(block)
            csv.unlink()
    return time.perf_counter() - started


def imported(dsn: str, out: Path) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "feedrank", "world", "import"]
    command += ["--dsn", dsn, "--out", str(out), "--force"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return {"import_s": wall, "peak_rss_mb": peak_kb / 1024}


def rows(path: Path) -> int:
    ((count,),) = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{path / 'feed_data' / '*.parquet'}')"
    ).fetchall()
    return int(count)


def markdown(result: dict) -> str:
    host = result["machine"]
    lines = [
        f"feedrank world import --dsn ({host['cpu']}, {host['cores']} cores; "
        f"commit {host['git_commit'][:10]})",
        "",
        "| feed rows | load into PostgreSQL s | import s | import peak RSS MB | rows equal |",
        "|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['feed_rows']:,} | {r['load_s']:.0f} | {r['import_s']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['rows_equal']} |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axis = plt.subplots(figsize=(6, 4))
    axis.plot([r["feed_rows"] for r in runs], [r["peak_rss_mb"] for r in runs], "o-")
    axis.set_xscale("log")
    axis.set_ylim(bottom=0)
    axis.set_xlabel("feed_data rows")
    axis.set_title("world import --dsn: peak resident memory, MB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="1000000,4000000,16000000")
    parser.add_argument("--users", type=int, default=163_205)
    parser.add_argument("--posts", type=int, default=7_023)
    parser.add_argument("--quick", action="store_true", help="20,000 views, 600 users")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    sizes = [20_000] if args.quick else [int(v) for v in args.views.split(",")]
    users, posts = (600, 120) if args.quick else (args.users, args.posts)
    result: dict = {"machine": machine(), "runs": []}
    cluster = PostgresCluster().start()
    try:
        for views in sizes:
            source = world(views, users, posts)
            database = f"views_{views}"
            cluster.execute(f"DROP DATABASE IF EXISTS {database}")
            cluster.execute(f"CREATE DATABASE {database}")
            dsn = cluster.dsn.rsplit("/", 1)[0] + f"/{database}"
            with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
                load_s = load(dsn, source, Path(scratch))
                run = imported(dsn, Path(scratch) / "imported")
                equal = rows(Path(scratch) / "imported") == rows(source)
            cluster.execute(f"DROP DATABASE {database}")
            result["runs"].append(
                {"views": views, "feed_rows": rows(source), "load_s": load_s, **run}
                | {"rows_equal": equal}
            )
            print(result["runs"][-1], flush=True)
    finally:
        cluster.remove()
    save(
        result,
        args.out,
        "postgres_import" + ("-quick" if args.quick else ""),
        markdown(result),
        plot,
    )
    return result


if __name__ == "__main__":
    CACHE.mkdir(parents=True, exist_ok=True)
    main()
