"""Each model's text pipeline as ONNX: the build's post columns, a post it never saw, and parity
with the scikit-learn transforms it was fitted with."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer

from feedrank.features.build import build_features
from feedrank.features.embeddings import EmbeddingCache
from feedrank.features.layout import FeaturesLayout
from feedrank.features.text import fit_text
from feedrank.features.text_pipelines import load_pipeline, words_of
from feedrank.world.layout import WorldLayout

MODELS = ("control", "test")


@pytest.fixture(scope="module")
def features(tiny_world):
    return FeaturesLayout(build_features(tiny_world, progress=False))


@pytest.fixture(scope="module")
def texts(tiny_world):
    return pl.read_parquet(WorldLayout(tiny_world).posts).sort("post_id")["text"].to_list()


@pytest.mark.parametrize("model", MODELS)
def test_the_post_tables_are_the_pipelines_output(tmp_path, features, texts, model):
    """A copy of the saved folder, without the build's embedding cache, gives the same columns:
    the folder is all a server needs to compute a new post's columns."""
    shutil.copytree(features.text_pipeline(model), tmp_path / "pipeline")
    pipeline = load_pipeline(tmp_path / "pipeline")
    table = pl.read_parquet(features.post_features(model))
    again = pipeline.columns(texts)
    assert pipeline.names == again.columns and set(again.columns) <= set(table.columns)
    np.testing.assert_allclose(
        again.to_numpy(), table.select(again.columns).to_numpy(), atol=1e-5, rtol=0
    )


def test_tfidf_statistics_and_lsa_match_scikit_learn(features, texts):
    columns = load_pipeline(features.text_pipeline("control"), features.embedding_cache).columns(
        texts
    )
    weights = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    nnz = np.diff(weights.indptr)
    total = np.asarray(weights.sum(axis=1)).ravel()
    np.testing.assert_array_equal(columns["tfidf_terms"], nnz)
    np.testing.assert_allclose(columns["tfidf_sum"], total, atol=1e-5)
    np.testing.assert_allclose(columns["tfidf_mean"], total / np.maximum(nnz, 1), atol=1e-5)
    np.testing.assert_allclose(
        columns["tfidf_max"], weights.max(axis=1).toarray().ravel(), atol=1e-5
    )
    np.testing.assert_array_equal(columns["text_chars"], [len(t) for t in texts])
    np.testing.assert_array_equal(columns["text_words"], [len(t.split()) for t in texts])


def test_the_embedding_columns_match_scikit_learn(features, texts):
    cache = EmbeddingCache(features.embedding_cache, features.text_encoder)
    embeddings = cache.encode(texts)
    fitted = fit_text(texts, embeddings, seed=0, n_components=24, n_clusters=16)["test"]
    columns = load_pipeline(features.text_pipeline("test"), features.embedding_cache).columns(texts)
    reduced = PCA(24, random_state=0).fit(embeddings).transform(embeddings)
    pca = columns.select([f"emb_pca_{i:02d}" for i in range(24)]).to_numpy()
    np.testing.assert_allclose(pca, reduced, atol=1e-4)
    distances = np.linalg.norm(reduced[:, None, :] - fitted.embedding_centres[None], axis=2)
    dist = columns.select([f"emb_dist_{i:02d}" for i in range(16)]).to_numpy()
    np.testing.assert_allclose(dist, distances, atol=1e-4)
    assert (columns["emb_cluster"].to_numpy() == dist.argmin(axis=1)).all()
    np.testing.assert_array_equal(
        columns.select([f"affinity_{i:02d}" for i in range(24)]).to_numpy(), pca
    )


@pytest.mark.parametrize("model", MODELS)
def test_a_new_post_gets_its_columns_alone_as_in_a_batch(features, texts, model):
    pipeline = load_pipeline(features.text_pipeline(model))  # no cache: every text is encoded
    new = ["A brand new post about a football match nobody has seen", "zzzz qqqq", ""]
    together = pipeline.columns(new + texts[:20]).to_numpy()
    alone = np.vstack([pipeline.columns([t]).to_numpy() for t in new])
    np.testing.assert_allclose(alone, together[:3], atol=1e-5)
    unknown = pipeline.columns(["zzzz qqqq"]).row(0, named=True)
    assert unknown["tfidf_terms"] == unknown["tfidf_sum"] == unknown["tfidf_max"] == 0
    assert unknown["text_words"] == 2


def test_words_are_scikit_learns_tokens():
    analyzer = TfidfVectorizer().build_analyzer()
    for text in ["Hello, World! a ab", "Ünïcode wörds hello_there x9 99", "  "]:
        assert words_of(text) == analyzer(text)


def test_an_int8_encoder_build_is_recorded_and_reproduced_online(tmp_path, tiny_world, texts):
    """The test model's pipeline built with the int8 encoder names it in its config, and its
    folder alone (no cache) gives the build's columns: the model is trained on what it serves."""
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world, ignore=shutil.ignore_patterns("features"))
    files = FeaturesLayout(build_features(world, progress=False, encoder_precision="int8"))
    pipeline = load_pipeline(files.text_pipeline("test"))
    assert pipeline.config["encoder"]["precision"] == "int8"
    assert pipeline.config["encoder"]["file"].endswith("-int8.onnx")
    table = pl.read_parquet(files.post_features("test"))
    again = pipeline.columns(texts)
    np.testing.assert_allclose(
        again.to_numpy(), table.select(again.columns).to_numpy(), atol=1e-5, rtol=0
    )
