"""MiniLM sentence embeddings of post texts, cached by text so that rebuilds skip the encoder.

The encoder is the ONNX graph of features/text_encoder.py; the test model's text pipeline
(features/text_pipelines.py) reduces its vectors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress

from feedrank.features.text_encoder import (
    DIMENSION,
    Precision,
    TextEncoder,
    encoder_file,
    load_encoder,
    write_encoder,
)

# MiniLM reads up to 256 word pieces; the first 128 (a headline and its lede, a whole tweet or a
# short review) carry the theme and the sentiment at half the encoding time
MAX_TOKENS = 128
SAVE_EVERY = 64  # batches


def text_hash(text: str, encoder: str) -> str:
    return hashlib.sha1(f"{encoder}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """Sentence embeddings by text hash in one Parquet file, so rebuilds skip the encoder.

    The encoder is the ONNX file of `precision` in `encoder_folder` (written there from the
    packaged weights when missing); its file and the token limit are part of every cached
    text's key.
    """

    def __init__(
        self,
        path: Path | None,
        encoder_folder: Path,
        max_tokens: int = MAX_TOKENS,
        precision: Precision = "float32",
    ) -> None:
        self.path, self.encoder_folder, self.max_tokens = path, encoder_folder, max_tokens
        self.precision = precision
        self._known: dict[str, np.ndarray] = {}
        self._encoder: TextEncoder | None = None
        if path is not None and path.exists():
            table = pl.read_parquet(path)
            # numpy's stubs want a Sequence; np.stack takes an array of arrays as well
            vectors = np.stack(table["embedding"].to_numpy()) if table.height else []  # type: ignore[call-overload]
            self._known = dict(zip(table["text_hash"].to_list(), vectors))

    @property
    def encoder_path(self) -> Path:
        return write_encoder(self.encoder_folder, self.precision)

    def _session(self) -> TextEncoder:
        """The encoder's onnxruntime session, opened on first use and kept: opening it costs
        more than encoding one text."""
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_folder, self.max_tokens, self.precision)
        return self._encoder

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        key = f"{encoder_file(self.precision)}:{self.max_tokens}"
        hashes = [text_hash(t, key) for t in texts]
        missing = sorted({h: t for h, t in zip(hashes, texts) if h not in self._known}.items())
        if missing:
            self._encode_missing(missing, progress)
        return (
            np.stack([self._known[h] for h in hashes]).astype(np.float32)
            if texts
            else np.zeros((0, DIMENSION), np.float32)
        )

    def _encode_missing(self, missing: list[tuple[str, str]], progress: Progress | None) -> None:
        task = (
            progress.add_task(f"encode posts (MiniLM {self.precision}, ONNX)", total=len(missing))
            if progress
            else None
        )
        encoder = self._session()
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
