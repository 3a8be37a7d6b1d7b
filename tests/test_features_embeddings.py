"""PostEmbedder: MiniLM through its ONNX encoder, PCA + KMeans, a lossless save/load."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from feedrank.features.build import build_features
from feedrank.features.embeddings import EmbeddingCache, PostEmbedder
from feedrank.features.layout import FeaturesLayout
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def texts(tiny_world):
    return pl.read_parquet(WorldLayout(tiny_world).posts)["text"].to_list()


@pytest.fixture(scope="module")
def features(tiny_world):
    return FeaturesLayout(build_features(tiny_world, progress=False))


@pytest.fixture(scope="module")
def cache(features):
    """The world's embedding cache: the build encoded every post once already."""
    return EmbeddingCache(features.embedding_cache, features.text_encoder)


@pytest.fixture(scope="module")
def embedder(texts, cache):
    return PostEmbedder(n_components=8, n_clusters=5, seed=1, cache=cache).fit(texts)


def test_transform_gives_components_then_distances(embedder, texts):
    values = embedder.transform(texts[:10])
    assert values.shape == (10, 13) and values.dtype == np.float32
    assert len(embedder.feature_names) == 13
    assert (values[:, 8:] >= 0).all()
    frame = embedder.frame(texts[:10])
    assert (frame["emb_cluster"].to_numpy() == values[:, 8:].argmin(axis=1)).all()


def test_save_then_load_gives_identical_outputs(tmp_path, embedder, texts):
    embedder.save(tmp_path / "pipeline")
    loaded = PostEmbedder.load(tmp_path / "pipeline", cache=embedder.cache)
    unseen = ["A brand new post about a football match nobody has seen", texts[0]]
    np.testing.assert_array_equal(loaded.transform(unseen), embedder.transform(unseen))
    assert loaded.feature_names == embedder.feature_names


def test_a_loaded_pipeline_with_a_fresh_encoder_cache_agrees(tmp_path, embedder, texts):
    """Without the cache the saved encoder runs again; batch padding moves the floats a little."""
    embedder.save(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / embedder.cache.encoder_path.name).exists()
    loaded = PostEmbedder.load(tmp_path / "pipeline")
    assert loaded.cache.encoder_folder == tmp_path / "pipeline"
    np.testing.assert_allclose(
        loaded.transform(texts[:3]), embedder.transform(texts[:3]), atol=1e-5
    )


def test_similar_texts_embed_closer_than_unrelated_ones(embedder):
    a, b, c = embedder.cache.encode(
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
