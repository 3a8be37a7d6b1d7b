"""Post features of the control model: topic (code and one-hot), TF-IDF statistics of the text,
and the text's TF-IDF reduced by LSA (the vectors of its user × post affinity)."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from feedrank.features.affinity import PREFIX
from feedrank.features.users import safe_name

AFFINITY_DIMENSIONS = 24
TEXT_CLUSTERS, POSTS_PER_CLUSTER = 128, 40


def topic_columns(topics: pl.Series) -> pl.DataFrame:
    vocabulary = sorted(topics.unique().to_list())
    code = pl.DataFrame({"topic_code": topics}).select(
        pl.col("topic_code").replace_strict(vocabulary, list(range(len(vocabulary))))
    )
    one_hot = {f"topic_{safe_name(t)}": (topics == t) for t in vocabulary}
    return pl.concat([code, pl.DataFrame(one_hot)], how="horizontal")


def tfidf_columns(texts: list[str], weights: csr_matrix) -> pl.DataFrame:
    """How much distinctive vocabulary a text carries: sum, mean and max of its TF-IDF weights."""
    nnz = np.diff(weights.indptr)
    total = np.asarray(weights.sum(axis=1)).ravel()
    return pl.DataFrame(
        {
            "text_chars": [len(t) for t in texts],
            "text_words": [len(t.split()) for t in texts],
            "tfidf_terms": nnz,
            "tfidf_sum": total,
            "tfidf_mean": total / np.maximum(nnz, 1),
            "tfidf_max": weights.max(axis=1).toarray().ravel(),
        }
    )


def affinity_columns(vectors: np.ndarray, seed: int) -> pl.DataFrame:
    """The vectors of the user × post affinity, and `text_cluster`: the post's fine cluster in
    that space (fine enough to tell sub-themes and tone apart: the like rate of a cluster is
    a precise prior for the rate of a post that few have seen yet)."""
    n = int(np.clip(len(vectors) // POSTS_PER_CLUSTER, 1, TEXT_CLUSTERS))
    n = min(n, len(np.unique(vectors, axis=0)))
    clusters = (
        KMeans(n, n_init=2, random_state=seed).fit_predict(vectors)
        if n > 1
        else np.zeros(len(vectors), np.int64)
    )
    return pl.DataFrame(
        vectors.astype(np.float32), schema=[f"{PREFIX}{i:02d}" for i in range(vectors.shape[1])]
    ).with_columns(text_cluster=pl.Series(clusters.astype(np.float32)))


def lsa(weights: csr_matrix, dimensions: int, seed: int) -> np.ndarray:
    """TF-IDF reduced to `dimensions` by truncated SVD (latent semantic analysis)."""
    dimensions = min(dimensions, weights.shape[1] - 1, weights.shape[0] - 1)
    if dimensions < 1:
        return np.zeros((weights.shape[0], 1))
    return TruncatedSVD(dimensions, random_state=seed).fit_transform(weights)


def post_text_features(posts: pl.DataFrame, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """`posts`: post_id, text, topic -> (post_id + numeric columns both models share, the LSA
    vectors of the texts)."""
    texts = posts["text"].to_list()
    weights = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    shared = pl.concat(
        [posts.select("post_id"), topic_columns(posts["topic"]), tfidf_columns(texts, weights)],
        how="horizontal",
    ).with_columns(pl.exclude("post_id").cast(pl.Float32))
    return shared, lsa(weights, AFFINITY_DIMENSIONS, seed)
