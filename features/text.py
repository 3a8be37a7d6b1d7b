"""Post features of the control model: topic (code and one-hot), TF-IDF statistics of the text."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import TfidfVectorizer

from feedrank.features.users import safe_name


def topic_columns(topics: pl.Series) -> pl.DataFrame:
    vocabulary = sorted(topics.unique().to_list())
    code = pl.DataFrame({"topic_code": topics}).select(
        pl.col("topic_code").replace_strict(vocabulary, list(range(len(vocabulary)))))
    one_hot = {f"topic_{safe_name(t)}": (topics == t) for t in vocabulary}
    return pl.concat([code, pl.DataFrame(one_hot)], how="horizontal")


def tfidf_columns(texts: list[str]) -> pl.DataFrame:
    """How much distinctive vocabulary a text carries: sum, mean and max of its TF-IDF weights."""
    weights = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    nnz = np.diff(weights.indptr)
    total = np.asarray(weights.sum(axis=1)).ravel()
    return pl.DataFrame({
        "text_chars": [len(t) for t in texts],
        "text_words": [len(t.split()) for t in texts],
        "tfidf_terms": nnz,
        "tfidf_sum": total,
        "tfidf_mean": total / np.maximum(nnz, 1),
        "tfidf_max": weights.max(axis=1).toarray().ravel(),
    })


def control_post_features(posts: pl.DataFrame) -> pl.DataFrame:
    """`posts`: post_id, text, topic -> post_id + numeric control columns."""
    return pl.concat([posts.select("post_id"), topic_columns(posts["topic"]),
                      tfidf_columns(posts["text"].to_list())],
                     how="horizontal").with_columns(pl.exclude("post_id").cast(pl.Float32))
