"""The fast-path backend: `model.onnx` for KServe, the fast-path graph (docs/fastpath.md) for the
feed.

The feed calls `like_probability` with whole requests' matrices, stacked when batched. A fast
ranker depends on the post columns, which include the posts' history and recent activity as of
the request's hour, so each ranker is kept with the post columns it was built for, matched bit
for bit (the dated columns first, which tell hours apart; a hash of all ~2 MB cost 3-6 ms per
request), and built on demand: a block whose ranker is not ready is scored by the plain
session (same probabilities within 1e-5) while one background thread builds it, so no request
ever waits for a build.
`infer` stays the plain model's: KServe clients and Triton must see exactly the exported
`model.onnx`.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq
from tritonclient.grpc.model_config_pb2 import ModelConfig

from feedrank.server.backends.base import ModelLoadError
from feedrank.server.backends.onnxruntime import OnnxRuntimeBackend
from feedrank.server.fastpath import FastRanker, feedrank_columns

log = logging.getLogger("feedrank.fastpath")
# rankers kept per version, the least recently used dropped first: a live feed asks about one
# or two hours ("now"), a benchmark, a replay or an explorer about several; each holds its
# tables (tens of MB on the default world), so the cache has a memory budget
CACHE_BYTES = 256 * 2**20
MIN_KEEP = 2


class FastPathBackend(OnnxRuntimeBackend):
    name: ClassVar[str] = "fastpath"

    def __init__(self, version_dir: Path, config: ModelConfig, *, threads: int = 1) -> None:
        super().__init__(version_dir, config, threads=threads)
        self.version_dir, self.threads = Path(version_dir), threads
        try:
            self.features: list[dict] = json.loads(
                (self.version_dir / "metadata.json").read_text())["features"]
            # one request's matrix has a row per catalogue post: that is how a batch splits
            self.n_posts = pq.read_metadata(self.version_dir / "post_features.parquet").num_rows
        except (OSError, ValueError, KeyError) as error:  # pyarrow's errors are OSError/ValueError
            raise ModelLoadError(f"{self.version_dir}: the fast path needs metadata.json's "
                                 f"features and post_features.parquet: {error!r}") from error
        self._post_columns: tuple[np.ndarray, np.ndarray] | None = None  # (dated, fixed)
        # ((dated bits, fixed bits), ranker), the most recently used last
        self._rankers: list[tuple[tuple[np.ndarray, np.ndarray], FastRanker]] = []
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._broken = False  # a failed build (e.g. an unsupported model) is not retried
        self.fast_blocks = self.plain_blocks = 0  # requests scored by each path

    def like_probability(self, features: np.ndarray) -> np.ndarray:
        if self.n_posts == 0 or len(features) % self.n_posts:
            return super().like_probability(features)  # not whole requests: nothing to key on
        blocks = features.reshape(-1, self.n_posts, features.shape[1])
        out = np.empty((len(blocks), self.n_posts))
        plain = []
        for i, block in enumerate(blocks):
            ranker = self._ranker(block)
            if ranker is None:
                plain.append(i)
            else:
                out[i] = 1.0 / (1.0 + np.exp(-ranker.scores_for_matrix(block)))
        if plain:  # one plain call for every block without a ranker
            out[plain] = super().like_probability(
                blocks[plain].reshape(-1, features.shape[1])).reshape(len(plain), -1)
        return out.reshape(-1)

    def ranking_paths(self) -> dict[str, int]:
        return {"fast": self.fast_blocks, "plain": self.plain_blocks}

    def wait_for_build(self, timeout: float | None = None) -> None:
        """Block until the running build (if any) ends: for tests and warm starts."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def _ranker(self, block: np.ndarray) -> FastRanker | None:
        """The ready ranker for this block's post columns; else start building one, None."""
        if self._post_columns is None:
            partition, _, _ = feedrank_columns(self.features, block)
            posts = partition.columns("post")
            # the posts' history and recent activity change by day and hour: compared first,
            # they tell the cached rankers apart cheaply; the rest only confirms the match
            dated = np.array([self.features[i]["source"] in ("history", "recent")
                              for i in posts], bool)
            self._post_columns = (posts[dated], posts[~dated])
        # as uint32: exact bits, so NaN equals NaN and -0.0 differs from 0.0
        key = _Key(block, *self._post_columns)
        ranker = self._find(key)  # lock-free: the list is replaced, never mutated
        with self._lock:
            if ranker is None:
                # a build may have ended since the look-up: look again before starting another
                ranker = self._find(key)
            if ranker is not None:
                self.fast_blocks += 1
                if self._rankers[-1][1] is not ranker:  # most recently used last
                    used = next(e for e in self._rankers if e[1] is ranker)
                    self._rankers = [*(e for e in self._rankers if e is not used), used]
                return ranker
            self.plain_blocks += 1
            if self._builder is None and not self._broken:
                self._builder = threading.Thread(target=self._build, args=(
                    (key.dated, key.fixed()), block.copy()), name="fastpath-build", daemon=True)
                self._builder.start()
        return None

    def _find(self, key: _Key) -> FastRanker | None:
        return next((r for (dated, fixed), r in reversed(self._rankers)
                     if np.array_equal(dated, key.dated) and np.array_equal(fixed, key.fixed())),
                    None)

    def _build(self, key: tuple[np.ndarray, np.ndarray], block: np.ndarray) -> None:
        ranker = None
        try:
            partition, groups, n_groups = feedrank_columns(self.features, block)
            ranker = FastRanker(self.version_dir, block, partition, groups, n_groups,
                                threads=self.threads)
            log.info("%s: fast path built in %.1f s (%.0f MB of tables)", self.version_dir,
                     ranker.build_seconds, ranker.table_bytes / 2**20)
        except Exception:
            log.exception("%s: fast path build failed; serving the plain model", self.version_dir)
        with self._lock:
            if ranker is None:
                self._broken = True
            else:
                kept = [*self._rankers, (key, ranker)]
                while (len(kept) > MIN_KEEP
                       and sum(r.table_bytes for _, r in kept) > CACHE_BYTES):
                    kept.pop(0)
                self._rankers = kept
            self._builder = None


class _Key:
    """A block's post columns as exact bits: the dated ones at once, the fixed ones when a
    cached ranker's dated bits match (gathered once)."""

    def __init__(self, block: np.ndarray, dated: np.ndarray, fixed: np.ndarray) -> None:
        self.dated = block[:, dated].view(np.uint32)
        self._block, self._fixed_columns = block, fixed
        self._fixed: np.ndarray | None = None

    def fixed(self) -> np.ndarray:
        if self._fixed is None:
            self._fixed = self._block[:, self._fixed_columns].view(np.uint32)
        return self._fixed
