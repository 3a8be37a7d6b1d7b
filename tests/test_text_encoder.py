"""The ONNX sentence encoder written from the packaged weights, against sentence-transformers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from feedrank.features.text_encoder import load_encoder, model_folder
from feedrank.world.layout import WorldLayout


@pytest.fixture(scope="module")
def texts(tiny_world):
    posts = pl.read_parquet(WorldLayout(tiny_world).posts)["text"].to_list()
    # one text past the 128 word pieces, to exercise the truncation
    return posts + [" ".join(posts[:6])]


@pytest.fixture(scope="module")
def reference(texts):
    """The Python pipeline the encoder replaces: torch, mean pooling, normalised."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_folder()), device="cpu")
    model.max_seq_length = 128
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("encoder")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_onnx_encoder_matches_sentence_transformers(texts, reference, folder):
    vectors = load_encoder(folder, 128).encode(texts)
    assert vectors.shape == reference.shape == (len(texts), 384)
    assert cosines(vectors, reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_text_encodes_the_same_alone_and_in_a_padded_batch(texts, folder):
    encoder = load_encoder(folder, 128)
    short_first = sorted(texts, key=len)[:40]
    together = encoder.encode(short_first)
    alone = np.stack([encoder.encode([t])[0] for t in short_first[::10]])
    np.testing.assert_allclose(alone, together[::10], atol=1e-5)


def test_texts_past_the_token_limit_are_truncated(folder):
    encoder = load_encoder(folder, 16)
    words = " ".join(f"word{i}" for i in range(200))
    assert len(encoder.tokenizer.encode(words).ids) == 16
    head, tail = encoder.encode([words, words + " and a different ending entirely"])
    np.testing.assert_allclose(head, tail, atol=1e-6)


def test_the_int8_encoder_stays_close_to_float32(texts, folder):
    float32 = load_encoder(folder, 128).encode(texts)
    int8 = load_encoder(folder, 128, "int8").encode(texts)
    similarity = cosines(int8, float32)
    # per-token activations keep the vectors close (7,023 catalogue posts: min 0.994)
    assert similarity.min() >= 0.99
    assert similarity.max() < 1 - 1e-6  # a different graph, not the float32 file again
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)


def test_an_int8_text_encodes_the_same_alone_and_in_a_batch(texts, folder):
    """Scales per token, never per batch: a post added online gets the build's vector."""
    encoder = load_encoder(folder, 128, "int8")
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts[::7]])
    np.testing.assert_allclose(alone, together[::7], atol=1e-6)
