"""Where a world's tables live on disk. Every stage finds a world's files through this class.

W/world.json                 manifest: how the world was made (seed, sizes) or imported
W/user_data.parquet          course table user_data
W/post_text_df.parquet       course table post_text_df
W/feed_data/*.parquet        course table feed_data, one file per day
W/ground_truth/              the planted like model (generated worlds only)
W/features/                  feature tables built by `feedrank build`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorldLayout:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "world.json"

    @property
    def users(self) -> Path:
        return self.root / "user_data.parquet"

    @property
    def posts(self) -> Path:
        return self.root / "post_text_df.parquet"

    @property
    def feed_dir(self) -> Path:
        return self.root / "feed_data"

    @property
    def feed_glob(self) -> str:
        """A path pattern DuckDB's read_parquet accepts for the whole feed."""
        return str(self.feed_dir / "*.parquet")

    @property
    def ground_truth(self) -> Path:
        return self.root / "ground_truth"

    @property
    def features(self) -> Path:
        return self.root / "features"
