"""Each model's text pipeline, fitted at build time and applied as ONNX: post texts -> columns.

Both models: the text's length in characters and words, and the statistics of its TF-IDF
(scikit-learn's words, sublinear counts, idf, l2). Control adds the TF-IDF reduced by LSA (its
affinity vectors) and the nearest of the fine clusters in that space. Test adds the MiniLM
embedding reduced by PCA, the distances to the KMeans centres and the nearest of them, and the
affinity vectors and fine clusters in the PCA space.

Fitting needs scikit-learn; applying a pipeline needs only onnxruntime and what its folder holds:
`text_features.onnx`, `words.json` (the TF-IDF vocabulary in column order) and, for test, the
MiniLM encoder and tokenizer (features/text_encoder.py). The build computes the catalogue's
columns through the same `TextPipeline.columns` that encodes a post the build never saw.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import polars as pl
from rich.progress import Progress

from feedrank.features.affinity import PREFIX
from feedrank.features.embeddings import EmbeddingCache
from feedrank.features.onnx_graph import FLOAT, INT64, Graph, tensor
from feedrank.features.text_encoder import DIMENSION
from feedrank.features.users import safe_name

# TfidfVectorizer's default token pattern, applied to the lower-cased text
WORDS = re.compile(r"(?u)\b\w\w+\b")
BATCH = 512  # texts per run: the TF-IDF counts are dense [batch, vocabulary]
GRAPH, WORDS_FILE, CONFIG = "text_features.onnx", "words.json", "pipeline.json"
VERSION_FOLDER = "text_pipeline"  # a model version's copy of its pipeline
TFIDF_STATS = ["tfidf_terms", "tfidf_sum", "tfidf_mean", "tfidf_max"]


@dataclass(frozen=True)
class Fitted:
    """What the build learnt from the catalogue's texts (float32 arrays)."""

    words: list[str]
    idf: np.ndarray
    # control: LSA components [d, words]; test: PCA mean [384] and components [d, 384]
    mean: np.ndarray | None
    components: np.ndarray
    text_centres: np.ndarray  # fine clusters of the affinity vectors
    embedding_centres: np.ndarray | None  # test: KMeans centres in the PCA space


def words_of(text: str) -> list[str]:
    return WORDS.findall(text.lower())


def topic_columns(topics: pl.Series, vocabulary: list[str]) -> pl.DataFrame:
    """`topic_code` (the topic's place in the catalogue's sorted topics) and one column per
    topic, as float32."""
    code = topics.replace_strict(vocabulary, list(range(len(vocabulary))), return_dtype=pl.Int64)
    one_hot = {f"topic_{safe_name(t)}": (topics == t) for t in vocabulary}
    return pl.DataFrame({"topic_code": code, **one_hot}).cast(pl.Float32)


class TextPipeline:
    """One model's text columns for any texts, through its ONNX graph."""

    def __init__(self, folder: Path, encoder: EmbeddingCache | None) -> None:
        self.folder, self.encoder = folder, encoder
        self.config = json.loads((folder / CONFIG).read_text())
        self.word_ids = {w: i for i, w in enumerate(json.loads((folder / WORDS_FILE).read_text()))}
        self.session = ort.InferenceSession(str(folder / GRAPH), providers=["CPUExecutionProvider"])

    @property
    def names(self) -> list[str]:
        return self.config["columns"]

    @property
    def topics(self) -> list[str]:
        return self.config["topics"]

    def post_table(self, posts: pl.DataFrame, progress: Progress | None = None) -> pl.DataFrame:
        """The model's post features of `posts` (post_id, text, topic): post_id, the topic
        columns, the text columns; the catalogue's at build time, a new post's online."""
        return pl.concat(
            [
                posts.select(pl.col("post_id").cast(pl.Int64)),
                topic_columns(posts["topic"], self.topics),
                self.columns(posts["text"].to_list(), progress),
            ],
            how="horizontal",
        )

    def columns(self, texts: list[str], progress: Progress | None = None) -> pl.DataFrame:
        """float32 columns in the order of `names`, one row per text."""
        embeddings = self.encoder.encode(texts, progress) if self.encoder else None
        parts = []
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            feeds = {"word_ids": self._ids(chunk)}
            if embeddings is not None:
                feeds["embedding"] = embeddings[start : start + BATCH]
            outputs = self.session.run(None, feeds)
            lengths = np.array([[len(t), len(t.split())] for t in chunk], np.float32)
            parts.append(np.hstack([lengths, *outputs]))  # every output is [batch, width]
        values = np.vstack(parts) if parts else np.zeros((0, len(self.names)), np.float32)
        return pl.DataFrame(values.astype(np.float32), schema=self.names)

    def _ids(self, texts: list[str]) -> np.ndarray:
        """The texts' known words as vocabulary ids, padded with -1 (no word)."""
        rows = [[self.word_ids[w] for w in words_of(t) if w in self.word_ids] for t in texts]
        ids = np.full((len(texts), max(1, *map(len, rows))), -1, np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids


def save_pipeline(
    folder: Path, model: str, fitted: Fitted, topics: list[str], encoder: EmbeddingCache | None
) -> None:
    shutil.rmtree(folder, ignore_errors=True)  # its files may be links into published versions
    folder.mkdir(parents=True)
    graph, names = features_graph(model, fitted)
    onnx.save(graph, folder / GRAPH)
    (folder / WORDS_FILE).write_text(json.dumps(fitted.words))
    config: dict = {
        "model": model,
        "topics": topics,
        "columns": names,
        "graph": GRAPH,
        "words": WORDS_FILE,
    }
    if encoder is not None:
        path = encoder.encoder_path
        for name in (path.name, "tokenizer.json"):
            link_or_copy(path.parent / name, folder / name)
        config["encoder"] = {
            "file": path.name,
            "max_tokens": encoder.max_tokens,
            "precision": encoder.precision,
        }
    (folder / CONFIG).write_text(json.dumps(config, indent=2))


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """A hard link where the file system allows it: the encoder alone is 90 MB, and every
    saved pipeline and model version holds the same immutable file."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def load_pipeline(folder: Path, cache: Path | None = None) -> TextPipeline:
    """The pipeline saved in `folder`; `cache` keeps the encoded texts between runs."""
    config = json.loads((folder / CONFIG).read_text())
    encoder = config.get("encoder")
    return TextPipeline(
        folder,
        EmbeddingCache(cache, folder, encoder["max_tokens"], encoder.get("precision", "float32"))
        if encoder
        else None,
    )


def features_graph(model: str, fitted: Fitted) -> tuple[onnx.ModelProto, list[str]]:
    """The ONNX graph of `fitted` (word ids [+ embedding] -> one output per group of columns)
    and the columns' names: the text's two lengths (computed by the caller) first."""
    g = Graph()
    weights = _tfidf(g, fitted)
    outputs = {"tfidf": (_tfidf_stats(g, weights), TFIDF_STATS)}
    d = fitted.components.shape[0]
    if model == "control":
        vectors = g.op("MatMul", weights, g.const("lsa", fitted.components.T.copy()))
    else:
        assert fitted.mean is not None and fitted.embedding_centres is not None
        centred = g.op("Sub", "embedding", g.const("pca_mean", fitted.mean))
        vectors = g.op("MatMul", centred, g.const("pca", fitted.components.T.copy()))
        distances = _distances(g, vectors, fitted.embedding_centres, "embedding_centres")
        outputs["emb_pca"] = (vectors, [f"emb_pca_{i:02d}" for i in range(d)])
        k = len(fitted.embedding_centres)
        outputs["emb_dist"] = (distances, [f"emb_dist_{i:02d}" for i in range(k)])
        outputs["emb_cluster"] = (_nearest(g, distances), ["emb_cluster"])
    outputs["affinity"] = (vectors, [f"{PREFIX}{i:02d}" for i in range(d)])
    text_clusters = _distances(g, vectors, fitted.text_centres, "text_centres")
    outputs["text_cluster"] = (_nearest(g, text_clusters), ["text_cluster"])
    for name, (value, _) in outputs.items():
        g.output(value, name)
    inputs = [tensor("word_ids", INT64, ["batch", "words"])]
    if model == "test":
        inputs.append(tensor("embedding", FLOAT, ["batch", DIMENSION]))
    graph = g.model(
        f"{model}_text_features",
        inputs,
        [tensor(name, FLOAT, ["batch", len(columns)]) for name, (_, columns) in outputs.items()],
    )
    return graph, ["text_chars", "text_words", *(c for _, cs in outputs.values() for c in cs)]


def _tfidf(g: Graph, fitted: Fitted) -> str:
    """sklearn's TfidfVectorizer(sublinear_tf=True): (1 + log count) x idf, l2-normalised."""
    n = len(fitted.words)
    counts = g.op(
        "TfIdfVectorizer",
        "word_ids",
        mode="TF",
        min_gram_length=1,
        max_gram_length=1,
        max_skip_count=0,
        ngram_counts=[0],
        ngram_indexes=list(range(n)),
        pool_int64s=list(range(n)),
    )
    zero, one = (
        g.const("zero_f", np.array(0, np.float32)),
        g.const("one_f", np.array(1, np.float32)),
    )
    present = g.op("Greater", counts, zero)
    sublinear = g.op(
        "Where", present, g.op("Add", g.op("Log", g.op("Max", counts, one)), one), zero
    )
    weighted = g.op("Mul", sublinear, g.const("idf", fitted.idf))
    norm = g.op("ReduceL2", weighted, axes=[1], keepdims=1)
    tiny = g.const("tiny", np.array(1e-30, np.float32))
    return g.op("Div", weighted, g.op("Max", norm, tiny))


def _tfidf_stats(g: Graph, weights: str) -> str:
    axis = g.const("axis_1", np.array([1], np.int64))
    terms = g.op(
        "ReduceSum",
        g.op(
            "Cast", g.op("Greater", weights, g.const("zero_w", np.array(0, np.float32))), to=FLOAT
        ),
        axis,
        keepdims=1,
    )
    total = g.op("ReduceSum", weights, axis, keepdims=1)
    mean = g.op("Div", total, g.op("Max", terms, g.const("one_t", np.array(1, np.float32))))
    largest = g.op("ReduceMax", weights, axes=[1], keepdims=1)
    return g.op("Concat", terms, total, mean, largest, axis=1)


def _distances(g: Graph, vectors: str, centres: np.ndarray, name: str) -> str:
    """Euclidean distance of each vector to each centre: [batch, centres]."""
    expanded = g.op("Unsqueeze", vectors, g.const(f"{name}_axis", np.array([1], np.int64)))
    return g.op("ReduceL2", g.op("Sub", expanded, g.const(name, centres)), axes=[2], keepdims=0)


def _nearest(g: Graph, distances: str) -> str:
    return g.op("Cast", g.op("ArgMin", distances, axis=1, keepdims=1), to=FLOAT)
