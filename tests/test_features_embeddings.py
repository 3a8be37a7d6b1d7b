"""EmbeddingCache: MiniLM vectors through the ONNX encoder, kept by text between builds."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from feedrank.features.build import build_features
from feedrank.features.embeddings import EmbeddingCache
from feedrank.features.layout import FeaturesLayout
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def texts(tiny_world):
    return pl.read_parquet(WorldLayout(tiny_world).posts)["text"].to_list()


@pytest.fixture(scope="module")
def features(tiny_world):
    return FeaturesLayout(build_features(tiny_world, progress=False))


def test_similar_texts_embed_closer_than_unrelated_ones(features):
    a, b, c = EmbeddingCache(None, features.text_encoder).encode(
        [
            "The striker scored twice in the final match",
            "Two goals from the forward won the cup final",
            "Central bank raises interest rates again",
        ]
    )
    assert a @ b > a @ c


def test_the_cache_file_keeps_the_encoded_texts(tmp_path, texts, features):
    first = EmbeddingCache(tmp_path / "cache.parquet", features.text_encoder)
    vectors = first.encode(texts[:3])
    reread = pl.read_parquet(tmp_path / "cache.parquet")
    assert reread.height == len(set(texts[:3]))
    np.testing.assert_array_equal(
        EmbeddingCache(tmp_path / "cache.parquet", features.text_encoder).encode(texts[:3]),
        vectors,
    )


def test_the_build_cached_every_post(texts, features):
    cached = pl.read_parquet(features.embedding_cache)
    assert cached.height == len(set(texts))
    assert EmbeddingCache(features.embedding_cache, features.text_encoder).encode([]).shape == (
        0,
        384,
    )
