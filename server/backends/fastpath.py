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

import hashlib
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, cast

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
# tables (about 120 MB per hour per model on the default world), so the cache has a memory budget
CACHE_BYTES = 512 * 2**20
MIN_KEEP = 2
# config.pbtxt parameters that tune one model's fast path (docs/fastpath.md): the merge cost
# trades table memory for fewer rows read per request; the budget caps the tables kept
MERGE_COST_PARAMETER = "fast_path_merge_cost"
CACHE_MB_PARAMETER = "fast_path_cache_mb"
# posts added to the catalogue that a ranker of the earlier catalogue leaves to the plain model
# (a few rows of it) before a ranker of the grown catalogue is built
REBUILD_AFTER = 64


@dataclass(frozen=True, eq=False)
class Built:
    """A ranker and the snapshot it was built from: its family and the digest of its rows."""

    ranker: FastRanker
    family: tuple
    digest: bytes


def probabilities(raw: np.ndarray) -> np.ndarray:
    """P(like) from raw scores, the exponential in float32: the raw scores are sums of float32
    tables (within ~3e-7 of CatBoost's), so it adds no error beyond theirs (≤ 4e-8), at half
    the cost of a float64 exponential over the catalogue."""
    with np.errstate(over="ignore"):  # a raw score below -88 gives exp = inf: P = 0
        e = np.exp(-raw.astype(np.float32)).astype(np.float64)
    e += 1.0
    return np.reciprocal(e, out=e)


def digest(base: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(base).data, digest_size=16).digest()


class FastPathBackend(OnnxRuntimeBackend):
    name: ClassVar[str] = "fastpath"

    def __init__(self, version_dir: Path, config: ModelConfig, *, threads: int = 1) -> None:
        super().__init__(version_dir, config, threads=threads)
        self.version_dir, self.threads = Path(version_dir), threads
        merge_cost = _parameter(config, MERGE_COST_PARAMETER, self.version_dir)
        self._build_options = {} if merge_cost is None else {"merge_cost": merge_cost}
        cache_mb = _parameter(config, CACHE_MB_PARAMETER, self.version_dir)
        self.cache_bytes = CACHE_BYTES if cache_mb is None else int(cache_mb * 2**20)
        if not (self.version_dir / "model.cbm").is_file():
            raise ModelLoadError(
                f"{self.version_dir}: the fast path compiles its rankers from "
                "model.cbm, which is missing"
            )
        # snapshot key -> ranker, the most recently used last
        self._rankers: dict[tuple, Built] = {}
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._broken = False  # a failed build (e.g. an unsupported model) is not retried
        self._digests: dict[tuple, bytes] = {}  # (snapshot key, rows) -> digest of those rows
        self.fast_blocks = self.plain_blocks = 0  # requests scored by each path

    def rank(self, requests: Sequence[RankingRequest]) -> list[np.ndarray]:
        """Each request by the ranker of its snapshot; by a ranker of an earlier catalogue of
        the same hour for the first posts and the plain model for the posts added since; or
        wholly by the plain model while a ranker builds. One plain call for all requests."""
        out: list[np.ndarray | None] = []
        plain: list[tuple[int, RankingRequest]] = []
        for i, request in enumerate(requests):
            ranker = self._ranker(request.snapshot)
            if ranker is None:
                plain.append((i, request))
                out.append(None)
                continue
            n, total = ranker.n_posts, request.snapshot.base.shape[0]
            head = request if n == total else request.rows(slice(0, n))
            out.append(probabilities(ranker.scores_for_request(head)))
            if n < total:
                plain.append((i, request.rows(slice(n, total))))
        if plain:
            scored = super().rank([request for _, request in plain])
            for (i, _), scores in zip(plain, scored, strict=True):
                earlier = out[i]
                out[i] = scores if earlier is None else np.concatenate([earlier, scores])
        return cast(list[np.ndarray], out)  # every request scored by now

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
                    builder = self._start_build(snapshot)
            builder.join()

    def wait_for_build(self, timeout: float | None = None) -> None:
        """Block until the running build (if any) ends: for tests and warm starts."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def _ranker(self, snapshot: Snapshot) -> FastRanker | None:
        """The ready ranker for this snapshot of the posts, or for an earlier catalogue of it
        (its first posts); else start building one, None."""
        built = self._rankers.get(snapshot.key)  # lock-free: the dict is replaced, not mutated
        head = None if built is not None else self._head(snapshot)
        with self._lock:
            if built is None:
                # a build may have ended since the look-up: look again before starting another
                built = self._rankers.get(snapshot.key)
            if built is not None:
                self.fast_blocks += 1
                # most recently used last; a ranker a build evicted since the look-up stays out
                if snapshot.key in self._rankers and next(reversed(self._rankers)) != snapshot.key:
                    self._rankers = {
                        **{k: r for k, r in self._rankers.items() if k != snapshot.key},
                        snapshot.key: built,
                    }
                return built.ranker
            added = snapshot.base.shape[0] - (head.n_posts if head else 0)
            if (
                self._builder is None
                and not self._broken
                and (head is None or added > REBUILD_AFTER)
            ):
                self._start_build(snapshot)
            if head is None:
                self.plain_blocks += 1
                return None
            self.fast_blocks += 1
            return head

    def _head(self, snapshot: Snapshot) -> FastRanker | None:
        """The largest ranker built from an earlier catalogue of this snapshot's family whose
        rows are this snapshot's first rows, bit for bit."""
        if not snapshot.family:
            return None
        n_posts = snapshot.base.shape[0]
        fitting = [
            b
            for b in self._rankers.values()
            if b.family == snapshot.family and b.ranker.n_posts < n_posts
        ]
        for built in sorted(fitting, key=lambda b: -b.ranker.n_posts):
            key = (snapshot.key, built.ranker.n_posts)
            rows = self._digests.get(key)
            if rows is None:
                rows = digest(snapshot.base[: built.ranker.n_posts])
                if len(self._digests) > 64:
                    self._digests = {}
                self._digests[key] = rows
            if rows == built.digest:
                return built.ranker
        return None

    def _start_build(self, snapshot: Snapshot) -> threading.Thread:
        """Under the lock: one build at a time, in the background."""
        self._builder = threading.Thread(
            target=self._build, args=(snapshot,), name="fastpath-build", daemon=True
        )
        self._builder.start()
        return self._builder

    def _build(self, snapshot: Snapshot) -> None:
        built = None
        try:
            ranker = FastRanker.for_snapshot(
                self.version_dir, snapshot, threads=self.threads, **self._build_options
            )
            built = Built(ranker, snapshot.family, digest(snapshot.base))
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
            if built is None:
                self._broken = True
            else:
                kept = [*self._rankers.items(), (snapshot.key, built)]
                while (
                    len(kept) > MIN_KEEP
                    and sum(b.ranker.table_bytes for _, b in kept) > self.cache_bytes
                ):
                    kept.pop(0)
                self._rankers = dict(kept)
            self._builder = None


def _parameter(config: ModelConfig, key: str, version_dir: Path) -> float | None:
    """A number ≥ 0 from config.pbtxt's `parameters`, None when the config does not set it."""
    if key not in config.parameters:
        return None
    text = config.parameters[key].string_value
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ModelLoadError(
            f"{version_dir.parent}/config.pbtxt: parameter {key} must be a number ≥ 0, got {text!r}"
        )
    return value
