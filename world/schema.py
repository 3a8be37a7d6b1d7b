"""The course tables' columns and Arrow types: one definition for generate, import and tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

USERS = pa.schema(
    [
        ("user_id", pa.int64()),
        ("gender", pa.int64()),
        ("age", pa.int64()),
        ("country", pa.string()),
        ("city", pa.string()),
        ("exp_group", pa.int64()),
        ("os", pa.string()),
        ("source", pa.string()),
    ]
)
POSTS = pa.schema([("post_id", pa.int64()), ("text", pa.string()), ("topic", pa.string())])
FEED = pa.schema(
    [
        ("timestamp", pa.timestamp("us")),
        ("user_id", pa.int64()),
        ("post_id", pa.int64()),
        ("action", pa.string()),
        ("target", pa.int8()),
    ]
)
ACTIONS = ("view", "like")


def write(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    """Write the schema's columns of `frame` with exactly the schema's types."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")
