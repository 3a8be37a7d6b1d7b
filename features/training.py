"""The training set: sampled view rows with the target and every feature of both models."""

from __future__ import annotations

import duckdb
import polars as pl

from feedrank.features.online import OnlineFeatures
from feedrank.features.rows import feature_rows
from feedrank.features.specs import FeatureSpec

HASH_BUCKETS = 1_000_000


def sample_views(feed_glob: str, cap: int, seed: int) -> pl.DataFrame:
    """All view rows when there are at most `cap`, else a deterministic hash sample of about
    `cap` (the same rows on every build of the same world and seed), ordered by time."""
    feed = f"read_parquet('{feed_glob}')"
    # duckdb.sql is None only for a statement without a result: never for these SELECTs
    total = duckdb.sql(f"SELECT count(*) FROM {feed} WHERE action = 'view'").fetchall()[0][0]  # type: ignore[union-attr]
    keep = HASH_BUCKETS if total <= cap else int(HASH_BUCKETS * cap / total)
    return duckdb.sql(  # type: ignore[union-attr]
        f"""
        SELECT timestamp, user_id, post_id, target::INT8 AS target FROM {feed}
        WHERE action = 'view'
          AND hash(timestamp, user_id, post_id, {seed}) % {HASH_BUCKETS} < {keep}
        ORDER BY timestamp, user_id, post_id"""
    ).pl()


def training_set(
    online: OnlineFeatures, specs: list[FeatureSpec], posts: pl.DataFrame, sample: pl.DataFrame
) -> pl.DataFrame:
    values = feature_rows(
        online,
        specs,
        posts,
        sample["user_id"].to_numpy(),
        sample["post_id"].to_numpy(),
        sample["timestamp"].to_numpy().astype("datetime64[us]"),
    )
    return sample.with_columns(**{k: pl.Series(v) for k, v in values.items()})
