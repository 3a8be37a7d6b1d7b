"""The fast-path backend: `model.onnx` for KServe, the fast-path graph (docs/fastpath.md) for the
feed.

The feed calls `rank` with structured requests (features/ranking_request.py). A fast ranker
depends on the post columns, which include the posts' history and recent activity as of the
request's hour: each ranker is kept under the key of the snapshot it was built from, and built
on demand: a request whose snapshot has no ranker yet is scored by the plain session (same
probabilities within 1e-5) while one background thread builds it, so no request ever waits for
a build. `infer` and `like_probability` stay the plain model's: KServe clients and Triton must
see exactly the exported `model.onnx`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from tritonclient.grpc.model_config_pb2 import ModelConfig

from feedrank.features.ranking_request import RankingRequest, Snapshot
from feedrank.server.backends.base import ModelLoadError
from feedrank.server.backends.onnxruntime import OnnxRuntimeBackend
from feedrank.server.fastpath import FastRanker
from feedrank.server.memory import release_free_memory

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
        if not (self.version_dir / "model.cbm").is_file():
            raise ModelLoadError(
                f"{self.version_dir}: the fast path compiles its rankers from "
                "model.cbm, which is missing"
            )
        # snapshot key -> ranker, the most recently used last
        self._rankers: dict[tuple, FastRanker] = {}
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._broken = False  # a failed build (e.g. an unsupported model) is not retried
        self.fast_blocks = self.plain_blocks = 0  # requests scored by each path

    def rank(self, requests: Sequence[RankingRequest]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        plain = []
        for i, request in enumerate(requests):
            ranker = self._ranker(request.snapshot)
            if ranker is None:
                plain.append(i)
                out.append(np.empty(0))
            else:
                out.append(1.0 / (1.0 + np.exp(-ranker.scores_for_request(request))))
        if plain:  # one plain call for every request whose snapshot has no ranker yet
            for i, scores in zip(plain, super().rank([requests[i] for i in plain]), strict=True):
                out[i] = scores
        return out

    def ranking_paths(self) -> dict[str, int]:
        return {"fast": self.fast_blocks, "plain": self.plain_blocks}

    def prepare(self, snapshot: Snapshot) -> None:
        """Build this snapshot's ranker now unless it is cached (after any running build: one
        at a time); a failed build leaves the plain model serving, as in the feed."""
        while True:
            with self._lock:
                if snapshot.key in self._rankers or self._broken:
                    return
                builder = self._builder
                if builder is None:
                    builder = self._builder = threading.Thread(
                        target=self._build, args=(snapshot,), name="fastpath-build", daemon=True
                    )
                    builder.start()
            builder.join()

    def wait_for_build(self, timeout: float | None = None) -> None:
        """Block until the running build (if any) ends: for tests and warm starts."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def _ranker(self, snapshot: Snapshot) -> FastRanker | None:
        """The ready ranker for this snapshot of the posts; else start building one, None."""
        ranker = self._rankers.get(snapshot.key)  # lock-free: the dict is replaced, not mutated
        with self._lock:
            if ranker is None:
                # a build may have ended since the look-up: look again before starting another
                ranker = self._rankers.get(snapshot.key)
            if ranker is not None:
                self.fast_blocks += 1
                # most recently used last; a ranker a build evicted since the look-up stays out
                if snapshot.key in self._rankers and next(reversed(self._rankers)) != snapshot.key:
                    self._rankers = {
                        **{k: r for k, r in self._rankers.items() if k != snapshot.key},
                        snapshot.key: ranker,
                    }
                return ranker
            self.plain_blocks += 1
            if self._builder is None and not self._broken:
                self._builder = threading.Thread(
                    target=self._build, args=(snapshot,), name="fastpath-build", daemon=True
                )
                self._builder.start()
        return None

    def _build(self, snapshot: Snapshot) -> None:
        ranker = None
        try:
            ranker = FastRanker.for_snapshot(self.version_dir, snapshot, threads=self.threads)
            log.info(
                "%s: fast path built in %.1f s (%.0f MB of tables)",
                self.version_dir,
                ranker.build_seconds,
                ranker.table_bytes / 2**20,
            )
        except Exception:
            log.exception("%s: fast path build failed; serving the plain model", self.version_dir)
        release_free_memory()  # the build's temporaries are several times the tables
        with self._lock:
            if ranker is None:
                self._broken = True
            else:
                kept = [*self._rankers.items(), (snapshot.key, ranker)]
                while len(kept) > MIN_KEEP and sum(r.table_bytes for _, r in kept) > CACHE_BYTES:
                    kept.pop(0)
                self._rankers = dict(kept)
            self._builder = None
