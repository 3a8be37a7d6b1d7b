"""Fitting the models' text pipelines on the catalogue (scikit-learn, at build time only).

TF-IDF (sublinear counts) for both; LSA of it for control; the MiniLM embedding's PCA and KMeans
centres for test; in each model's affinity space the fine clusters, fine enough to tell
sub-themes and tone apart (the like rate of a cluster is a precise prior for the rate of a post
that few have seen yet). features/text_pipelines.py turns the result into ONNX.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from feedrank.features.text_pipelines import WORDS, Fitted

AFFINITY_DIMENSIONS = 24
TEXT_CLUSTERS, POSTS_PER_CLUSTER = 128, 40


def fit_text(
    texts: list[str], embeddings: np.ndarray, seed: int, n_components: int, n_clusters: int
) -> dict[str, Fitted]:
    """Both models' fitted text pipelines, from the texts and their MiniLM embeddings."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=WORDS.pattern)
    weights = vectorizer.fit_transform(texts)
    words = vectorizer.get_feature_names_out().tolist()
    idf = vectorizer.idf_.astype(np.float32)

    dimensions = min(AFFINITY_DIMENSIONS, weights.shape[1] - 1, weights.shape[0] - 1)
    if dimensions >= 1:
        svd = TruncatedSVD(dimensions, random_state=seed).fit(weights)
        lsa, lsa_vectors = svd.components_, svd.transform(weights)
    else:
        lsa, lsa_vectors = np.zeros((1, weights.shape[1])), np.zeros((weights.shape[0], 1))

    n_components = min(n_components, *embeddings.shape)
    pca = PCA(n_components=n_components, random_state=seed).fit(embeddings)
    reduced = pca.transform(embeddings)
    n_clusters = min(n_clusters, len(np.unique(reduced, axis=0)))
    centres = KMeans(n_clusters, n_init=4, random_state=seed).fit(reduced).cluster_centers_
    return {
        "control": Fitted(words, idf, None, f32(lsa), text_centres(lsa_vectors, seed), None),
        "test": Fitted(
            words,
            idf,
            f32(pca.mean_),
            f32(pca.components_),
            text_centres(reduced, seed),
            f32(centres),
        ),
    }


def text_centres(vectors: np.ndarray, seed: int) -> np.ndarray:
    """Centres of the fine clusters of the affinity vectors: one per POSTS_PER_CLUSTER posts,
    at most TEXT_CLUSTERS."""
    n = int(np.clip(len(vectors) // POSTS_PER_CLUSTER, 1, TEXT_CLUSTERS))
    n = min(n, len(np.unique(vectors, axis=0)))
    if n == 1:
        return f32(vectors.mean(axis=0, keepdims=True))
    return f32(KMeans(n, n_init=2, random_state=seed).fit(vectors).cluster_centers_)


def f32(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32)
