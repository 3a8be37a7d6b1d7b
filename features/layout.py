"""Where the feature tables of a world live: W/features/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feedrank.errors import FeedrankError


@dataclass(frozen=True)
class FeaturesLayout:
    root: Path

    users = property(lambda self: self.root / "user_features.parquet")
    views = property(lambda self: self.root / "events_view.parquet")
    likes = property(lambda self: self.root / "events_like.parquet")
    history = property(lambda self: self.root / "history")
    posts_control = property(lambda self: self.root / "post_features_control.parquet")
    posts_test = property(lambda self: self.root / "post_features_test.parquet")
    embedding_cache = property(lambda self: self.root / "embedding_cache.parquet")
    text_encoder = property(lambda self: self.root / "text_encoder")

    def text_pipeline(self, model: str) -> Path:
        """The model's text pipeline as ONNX (features/text_pipelines.py), copied into versions."""
        return self.root / "text_pipeline" / model

    def training_set(self, model: str) -> Path:
        """The sampled views with every feature of `model` (models that share a column name
        may compute it in their own text space: the text cluster, the affinity)."""
        return self.root / f"training_set_{model}.parquet"

    manifest = property(lambda self: self.root / "manifest.json")

    def post_features(self, model: str) -> Path:
        return {"control": self.posts_control, "test": self.posts_test}[model]

    def require(self) -> None:
        missing = [
            p.name
            for p in (self.users, self.history / "history.json", self.posts_control)
            if not p.exists()
        ]
        if missing:
            raise FeedrankError(
                f"{self.root}: no feature tables ({', '.join(missing)} missing); "
                "run `feedrank build` on this world first"
            )
