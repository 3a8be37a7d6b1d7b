"""The posts a feed can show: the catalogue, and each loaded version's candidates.

The catalogue is the world's post table plus the posts posted since (server/posts.py). Each
version ranks its own `ModelInputs`: the post features its build computed, and for every posted
post the features its own text pipeline computes (features/text_pipelines.py, the files of the
version's `text_pipeline/`). A version's inputs are built on first use, off the event loop; a
version whose inputs cannot be built is remembered and its requests answered 503 at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import polars as pl

from feedrank.errors import FeedrankError
from feedrank.features.history import History
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.features.text_pipelines import VERSION_FOLDER, TextPipeline, load_pipeline
from feedrank.server.repository import LoadedVersion
from feedrank.world.layout import WorldLayout

log = logging.getLogger("feedrank.catalogue")
POST_SCHEMA = {"post_id": pl.Int64, "text": pl.String, "topic": pl.String}


class PostCatalog:
    """Post id -> its JSON object `{"id","text","topic"}`, encoded once; the world's posts and
    those posted since."""

    def __init__(self, world: Path) -> None:
        rows = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
            f"SELECT post_id, text, topic FROM read_parquet("
            f"'{WorldLayout(world).posts}') ORDER BY post_id"
        ).fetchall()
        self.post_ids = np.array([r[0] for r in rows], dtype=np.int64)
        # known[post_id]: a dense table, for validating posted events in one look-up each
        self.known = np.zeros(int(self.post_ids.max(initial=-1)) + 1, dtype=bool)
        self.known[self.post_ids] = True
        self.topics = sorted({topic for _, _, topic in rows if topic is not None})
        self.posted: dict[int, str] = {}  # posted post -> when the server accepted it
        self._popular: tuple[np.datetime64, np.ndarray] | None = None
        self._json = {
            pid: compact_json({"id": pid, "text": text, "topic": topic})
            for pid, text, topic in rows
        }

    def add(self, posts: pl.DataFrame, accepted_at: list[str]) -> None:
        """Posted posts (post_id, text, topic) join the catalogue; when each was accepted."""
        ids = posts["post_id"].to_numpy().astype(np.int64)
        for (pid, text, topic), at in zip(posts.iter_rows(), accepted_at, strict=True):
            self._json[pid] = compact_json({"id": pid, "text": text, "topic": topic})
            self.posted[pid] = at
        known = np.zeros(max(self.known.size, int(ids.max(initial=-1)) + 1), dtype=bool)
        known[: self.known.size] = self.known
        known[ids] = True
        # new arrays, not mutated ones: a request reading the old ones stays consistent
        self.post_ids = np.sort(np.concatenate([self.post_ids, ids]))
        self.known, self._popular = known, None

    def popular(self, history: History, at: np.datetime64) -> np.ndarray:
        """Every post, most liked first by the likes known at the start of the day of `at`
        (the fallback's order; one day's kept: requests cluster around "now")."""
        day = at.astype("datetime64[D]")
        cached = self._popular
        if cached is None or cached[0] != day:
            cached = self._popular = (day, history.most_liked(self.post_ids, day))
        return cached[1]

    def contains(self, post_ids: np.ndarray) -> np.ndarray:
        known = self.known
        inside = (post_ids >= 0) & (post_ids < known.size)
        return inside & known[np.where(inside, post_ids, 0)]

    def contains_id(self, post_id: int) -> bool:
        return post_id < self.known.size and bool(self.known[post_id])

    def post(self, post_id: int) -> dict[str, Any]:
        """`{"id", "text", "topic"}` of a post of the catalogue."""
        return cast(dict[str, Any], json.loads(self._json[post_id]))

    def json_array(self, post_ids: np.ndarray) -> str:
        return "[" + ",".join(self._json[int(p)] for p in post_ids) + "]"


class ModelUnavailable(RuntimeError):
    """The group's model version cannot serve: not loaded (for example unloaded before the
    router moved), or its inputs cannot be built here."""


class InputsCache:
    """One `ModelInputs` per loaded version, with the posted posts among its candidates."""

    def __init__(self, online: OnlineFeatures, catalog: PostCatalog, executor: Executor) -> None:
        self._online, self._catalog = online, catalog
        self._executor = executor
        self._ready: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._building: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._failed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._pipelines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._posted = pl.DataFrame(schema=POST_SCHEMA)
        # one build or catalogue change at a time: a version built while posts arrive gets them
        self._lock = threading.Lock()

    def warm(self, loaded: LoadedVersion) -> None:
        """Build a version's inputs now (blocking); used while validating a router config."""
        if loaded.backend not in self._ready:
            self._build(loaded)

    async def get(self, loaded: LoadedVersion) -> ModelInputs:
        inputs = self._ready.get(loaded.backend)
        if inputs is not None:
            return inputs
        failure = self._failed.get(loaded.backend)
        if failure is not None:
            raise ModelUnavailable(failure)
        task = self._building.get(loaded.backend)
        if task is None:
            loop = asyncio.get_running_loop()
            task = self._building[loaded.backend] = loop.run_in_executor(
                self._executor, self._build, loaded
            )
        try:
            built: ModelInputs = await asyncio.shield(task)
        except FeedrankError as error:
            failure = self._failed[loaded.backend] = (
                f"{loaded.model} version {loaded.version}: {error}"
            )
            raise ModelUnavailable(failure) from None
        finally:
            self._building.pop(loaded.backend, None)
        return built

    def ready(self, loaded: LoadedVersion) -> ModelInputs | None:
        """The version's inputs if built."""
        return self._ready.get(loaded.backend)

    def replay(self, posts: pl.DataFrame) -> None:
        """Posts accepted before a restart: candidates of every version built from now on."""
        with self._lock:
            self._posted = pl.concat([self._posted, posts])

    def add(
        self, posts: pl.DataFrame, versions: list[LoadedVersion], commit: Callable[[], None]
    ) -> list[tuple[LoadedVersion, str]]:
        """Every built version's inputs with `posts` among the candidates, live once `commit`
        (which makes them durable) returns; if it raises, nothing changes. Blocking (seconds
        for many posts: run it in a worker thread). Returns the versions that cannot rank the
        posts, and why."""
        with self._lock:
            grown: list[tuple[LoadedVersion, ModelInputs]] = []
            refused: list[tuple[LoadedVersion, str]] = []
            for loaded in versions:
                inputs = self._ready.get(loaded.backend)
                if inputs is None:
                    continue  # built later, with every posted post
                try:
                    grown.append((loaded, self._with_posts(loaded, inputs, posts)))
                except FeedrankError as error:
                    refused.append((loaded, str(error)))
            commit()
            for loaded, inputs in grown:
                self._ready[loaded.backend] = inputs
            self._posted = pl.concat([self._posted, posts])
        return refused

    def _build(self, loaded: LoadedVersion) -> ModelInputs:
        """The version's inputs, made live under the lock: posts accepted meanwhile wait."""
        with self._lock:
            built = self._ready[loaded.backend] = self._with_posted(loaded)
            return built

    def _with_posted(self, loaded: LoadedVersion) -> ModelInputs:
        inputs = ModelInputs.from_version_dir(self._online, loaded.path, loaded.metadata or None)
        unknown = inputs.post_ids[~self._catalog.contains(inputs.post_ids)]
        if unknown.size:
            raise FeedrankError(
                f"{loaded.path}: {unknown.size} candidate posts are not in the world's post "
                f"table (e.g. {unknown[:5].tolist()}): the version was built on another world"
            )
        if self._posted.is_empty():
            return inputs
        try:
            return self._with_posts(loaded, inputs, self._posted)
        except FeedrankError as error:
            log.warning("%s: ranks no posted post: %s", loaded.path, error)
            return inputs

    def _with_posts(
        self, loaded: LoadedVersion, inputs: ModelInputs, posts: pl.DataFrame
    ) -> ModelInputs:
        new = posts.filter(~pl.col("post_id").is_in(pl.Series(inputs.post_ids)))
        if new.is_empty():
            return inputs
        return inputs.with_posts(self._pipeline(loaded).post_table(new))

    def _pipeline(self, loaded: LoadedVersion) -> TextPipeline:
        """The version's text pipeline, opened on first use (the test model's holds the
        sentence encoder: 90 MB that a server nobody posts to never loads)."""
        pipeline = self._pipelines.get(loaded.backend)
        if pipeline is None:
            folder = loaded.path / VERSION_FOLDER
            try:
                pipeline = load_pipeline(folder)
            except (OSError, ValueError, KeyError) as error:
                raise FeedrankError(f"{folder}: no usable text pipeline ({error})") from None
            if "topics" not in pipeline.config:
                raise FeedrankError(f"{folder}: the pipeline does not list its topics")
            self._pipelines[loaded.backend] = pipeline
        return cast(TextPipeline, pipeline)


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
