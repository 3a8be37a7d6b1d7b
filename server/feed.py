"""The feed endpoint: `GET /post/recommendations/?id=&time=&limit=`.

One request: validate the query, route the user to a group, resolve that group's (model, version)
once (an atomic swap elsewhere never changes a request half-way), score every candidate post in
one backend call (possibly batched with concurrent requests), drop posts the user liked before
`time` (in the world's snapshot or in events posted to `/feed/events` since), take the top
`limit`, log the answer durably, then send it. A user without features gets the most popular
posts known before `time` that they have not liked (`fallback: true`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.errors import FeedrankError
from feedrank.features.history import History
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.server.batching import Batcher, Job
from feedrank.server.errors import FieldErrors, error_response
from feedrank.server.exposure_log import ExposureLog
from feedrank.server.live_likes import LiveLikes
from feedrank.server.metrics import Metrics
from feedrank.server.params import FeedQuery, parse_feed_query
from feedrank.server.ranking import popular_fallback, rank
from feedrank.server.repository import LoadedVersion, ModelNotFound, ModelRepository
from feedrank.server.request_log import request_id
from feedrank.server.router import Router
from feedrank.server.shared_likes import Likes, SharedLikes
from feedrank.world.layout import WorldLayout

log = logging.getLogger("feedrank.feed")
FALLBACK_MODEL = "popular"  # model name logged for fallback answers (version 0)


class PostCatalog:
    """Post id -> its JSON object `{"id","text","topic"}`, encoded once at start-up."""

    def __init__(self, world: Path) -> None:
        rows = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
            f"SELECT post_id, text, topic FROM read_parquet("
            f"'{WorldLayout(world).posts}') ORDER BY post_id"
        ).fetchall()
        self.post_ids = np.array([r[0] for r in rows], dtype=np.int64)
        # known[post_id]: a dense table, for validating posted events in one look-up each
        self.known = np.zeros(int(self.post_ids.max(initial=-1)) + 1, dtype=bool)
        self.known[self.post_ids] = True
        self._popular: tuple[np.datetime64, np.ndarray] | None = None
        self._json = {
            pid: _json({"id": pid, "text": text, "topic": topic}) for pid, text, topic in rows
        }

    def popular(self, history: History, at: np.datetime64) -> np.ndarray:
        """Every post, most liked first by the likes known at the start of the day of `at`
        (the fallback's order; one day's kept: requests cluster around "now")."""
        day = at.astype("datetime64[D]")
        if self._popular is None or self._popular[0] != day:
            self._popular = (day, history.most_liked(self.post_ids, day))
        return self._popular[1]

    def contains(self, post_ids: np.ndarray) -> np.ndarray:
        inside = (post_ids >= 0) & (post_ids < self.known.size)
        return inside & self.known[np.where(inside, post_ids, 0)]

    def post(self, post_id: int) -> dict[str, Any]:
        """`{"id", "text", "topic"}` of a post of the catalogue."""
        return cast(dict[str, Any], json.loads(self._json[post_id]))

    def json_array(self, post_ids: np.ndarray) -> str:
        return "[" + ",".join(self._json[int(p)] for p in post_ids) + "]"


class ModelUnavailable(RuntimeError):
    """The group's model version cannot serve: not loaded (for example unloaded before the
    router moved), or its inputs cannot be built here."""


class InputsCache:
    """One `ModelInputs` per loaded version, built on first use off the event loop, from the
    metadata the repository read at load. Its candidates must be posts of the catalogue; a
    version whose inputs cannot be built is remembered, and its requests answered 503 at once."""

    def __init__(self, online: OnlineFeatures, catalog: PostCatalog, executor: Executor) -> None:
        self._online, self._catalog = online, catalog
        self._executor = executor
        self._ready: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._building: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._failed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def warm(self, loaded: LoadedVersion) -> None:
        """Build a version's inputs now (blocking); used while validating a router config."""
        if loaded.backend not in self._ready:
            self._ready[loaded.backend] = self._build(loaded)

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
        self._ready[loaded.backend] = built
        return built

    def _build(self, loaded: LoadedVersion) -> ModelInputs:
        inputs = ModelInputs.from_version_dir(self._online, loaded.path, loaded.metadata or None)
        unknown = inputs.post_ids[~self._catalog.contains(inputs.post_ids)]
        if unknown.size:
            raise FeedrankError(
                f"{loaded.path}: {unknown.size} candidate posts are not in the world's post "
                f"table (e.g. {unknown[:5].tolist()}): the version was built on another world"
            )
        return inputs


@dataclass(frozen=True)
class Answer:
    request_id: str
    exp_group: str
    model: str
    version: int
    post_ids: np.ndarray
    fallback: bool
    ranker: str  # the backend that ranked, or the fallback's name


class FeedService:
    """Everything one feed request needs, wired once by the app's lifespan."""

    def __init__(
        self,
        *,
        online: OnlineFeatures,
        repository: ModelRepository,
        router: Router,
        catalog: PostCatalog,
        inputs: InputsCache,
        batcher: Batcher,
        exposure_log: ExposureLog,
        events_log: ExposureLog,
        shared: SharedLikes,
        live_likes: LiveLikes,
        metrics: Metrics,
    ) -> None:
        self.online, self.repository, self.router = online, repository, router
        self.catalog, self.inputs, self.batcher = catalog, inputs, batcher
        self.exposure_log, self.events_log, self.live_likes = exposure_log, events_log, live_likes
        self.shared, self.metrics = shared, metrics

    def take_likes(self, likes: Likes) -> None:
        """Likes another serving process published: excluded from now on."""
        self.live_likes.add(likes.user_id, likes.post_id, likes.timestamp)
        self.metrics.live_likes.set(len(self.live_likes))

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        """Posts to exclude: liked before `at` in the snapshot or in events posted since."""
        return np.concatenate(
            [self.online.liked_before(user_id, at), self.live_likes.liked_before(user_id, at)]
        )

    async def recommend(self, query: FeedQuery, request_id: str) -> Answer:
        group = self.router.config.assign(query.user_id)
        liked = self.liked_before(query.user_id, query.at)
        if not self.online.has_user(query.user_id):
            ids = popular_fallback(
                self.catalog.popular(self.online.history, query.at),
                self.catalog.post_ids,
                liked,
                query.limit,
            )
            return Answer(request_id, group.name, FALLBACK_MODEL, 0, ids, True, FALLBACK_MODEL)
        try:
            loaded = self.repository.get(group.model, group.version)
        except ModelNotFound as error:
            raise ModelUnavailable(f"group '{group.name}': {error}") from error
        inputs = await self.inputs.get(loaded)
        scored = await self.batcher.score(loaded.backend, Job(inputs, query.user_id, query.at))
        self.metrics.observe_scoring(loaded.model, loaded.version, scored)
        ids = rank(
            inputs.post_ids, inputs.ranking_scores(scored.scores, query.at), liked, query.limit
        )
        return Answer(
            request_id, group.name, loaded.model, loaded.version, ids, False, loaded.backend.name
        )

    def record(self, query: FeedQuery, answer: Answer, latency_ms: float) -> dict:
        return {
            "request_id": answer.request_id,
            "server_time": datetime.now(UTC).isoformat(),
            "requested_time": _iso(query.at),
            "user_id": query.user_id,
            "exp_group": answer.exp_group,
            "model": answer.model,
            "version": answer.version,
            "ranker": answer.ranker,
            "post_ids": answer.post_ids.tolist(),
            "fallback": answer.fallback,
            "latency_ms": round(latency_ms, 3),
        }

    def body(self, query: FeedQuery, answer: Answer) -> str:
        extra = _json(
            {
                "model": answer.model,
                "version": answer.version,
                "request_id": answer.request_id,
                "fallback": answer.fallback,
                "time": _iso(query.at),
            }
        )
        return (
            f'{{"exp_group":{_json(answer.exp_group)},"recommendations":'
            f"{self.catalog.json_array(answer.post_ids)},{extra[1:]}"
        )


async def recommendations(request: Request) -> Response:
    started = time.perf_counter()
    service: FeedService = request.app.state.feed
    answer: Answer | None = None
    if request.method == "HEAD":
        # a HEAD shows nothing, so it must not rank or log an exposure
        return error_response(405, "HEAD is not served: GET the feed", {"Allow": "GET"})
    try:
        query = parse_feed_query(request.query_params.multi_items())
        answer = await service.recommend(query, request_id(request.scope))
        await service.exposure_log.write(
            service.record(query, answer, (time.perf_counter() - started) * 1e3)
        )
        response = Response(service.body(query, answer), media_type="application/json")
    except FieldErrors as error:
        response = error.response()
    except ModelUnavailable as error:
        response = error_response(503, str(error))
    except OSError as error:
        # an answer that cannot be logged is not sent: the A/B analysis must see every exposure
        response = error_response(503, f"exposure log unavailable: {error}")
    except Exception as error:  # a backend fault: a JSON 500 and a logged traceback
        log.exception("feed request failed")
        response = error_response(500, f"internal error: {type(error).__name__}: {error}")
    service.metrics.observe_feed(
        *((answer.exp_group, answer.model, answer.version) if answer else ("", "", 0)),
        response.status_code,
        time.perf_counter() - started,
    )
    return response


async def router_state(request: Request) -> Response:
    return JSONResponse(request.app.state.feed.router.state())


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _iso(at: np.datetime64) -> str:
    """`2021-12-01T14:30:00`, with a fraction only when there is one."""
    return cast(datetime, at.astype("datetime64[us]").item()).isoformat()
