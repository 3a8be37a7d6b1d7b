"""User features: every column numeric (CatBoost's ONNX export takes no categorical inputs)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

# small categoricals become one-hot columns named `<column>_<value>`
ONE_HOT = ("country", "os", "source", "exp_group")


def safe_name(text: str) -> str:
    return re.sub(r"\W+", "_", str(text)).strip("_")


def user_features(users_parquet: Path) -> pl.DataFrame:
    """user_id, gender, age, city_freq (share of users living in the city), one-hot columns."""
    table = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
        f"""
        SELECT user_id, gender, age, country, os, source, exp_group,
               count(*) OVER (PARTITION BY city) / count(*) OVER () AS city_freq
        FROM read_parquet('{users_parquet}') ORDER BY user_id"""
    ).pl()
    dummies = [table.select(pl.col(c).cast(pl.String)).to_dummies(separator="_") for c in ONE_HOT]
    dummies = [d.select(sorted(d.columns)).rename(safe_name) for d in dummies]
    return pl.concat(
        [table.select("user_id", "gender", "age", "city_freq"), *dummies], how="horizontal"
    ).with_columns(pl.exclude("user_id").cast(pl.Float32))
