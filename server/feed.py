"""The feed endpoint: `GET /post/recommendations/?id=&time=&limit=`.

One request: validate the query, route the user to a group, resolve that group's (model, version)
once (an atomic swap elsewhere never changes a request half-way), score every candidate post in
one backend call (possibly batched with concurrent requests), drop posts the user liked before
`time` (in the world's snapshot or in events posted to `/feed/events` since), take the top
`limit`, log the answer durably, then send it. The candidates are the version's catalogue and
the posts posted since (server/posts.py); the answer says how many were scored. A user without
features gets the most popular posts known before `time` that they have not liked
(`fallback: true`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.features.online import OnlineFeatures
from feedrank.server.batching import Batcher, Job
from feedrank.server.catalogue import InputsCache, ModelUnavailable, PostCatalog, compact_json
from feedrank.server.errors import FieldErrors, error_response
from feedrank.server.exposure_log import ExposureLog
from feedrank.server.live_likes import LiveLikes
from feedrank.server.metrics import Metrics
from feedrank.server.params import FeedQuery, parse_feed_query
from feedrank.server.ranking import popular_fallback, rank
from feedrank.server.repository import ModelNotFound, ModelRepository
from feedrank.server.request_log import request_id
from feedrank.server.router import Router
from feedrank.server.shared_likes import Likes, SharedLikes

log = logging.getLogger("feedrank.feed")
FALLBACK_MODEL = "popular"  # model name logged for fallback answers (version 0)


@dataclass(frozen=True)
class Answer:
    request_id: str
    exp_group: str
    model: str
    version: int
    post_ids: np.ndarray
    fallback: bool
    ranker: str  # the backend that ranked, or the fallback's name
    candidates: int  # posts scored (the fallback: posts ordered)


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
        posts_log: ExposureLog,
        shared: SharedLikes,
        live_likes: LiveLikes,
        metrics: Metrics,
    ) -> None:
        self.online, self.repository, self.router = online, repository, router
        self.catalog, self.inputs, self.batcher = catalog, inputs, batcher
        self.exposure_log, self.events_log, self.live_likes = exposure_log, events_log, live_likes
        self.posts_log = posts_log
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
            return Answer(
                request_id,
                group.name,
                FALLBACK_MODEL,
                0,
                ids,
                True,
                FALLBACK_MODEL,
                self.catalog.post_ids.size,
            )
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
            request_id,
            group.name,
            loaded.model,
            loaded.version,
            ids,
            False,
            loaded.backend.name,
            inputs.post_ids.size,
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
            "candidates": answer.candidates,
            "latency_ms": round(latency_ms, 3),
        }

    def body(self, query: FeedQuery, answer: Answer) -> str:
        extra = compact_json(
            {
                "model": answer.model,
                "version": answer.version,
                "request_id": answer.request_id,
                "fallback": answer.fallback,
                "candidates": answer.candidates,
                "time": _iso(query.at),
            }
        )
        return (
            f'{{"exp_group":{compact_json(answer.exp_group)},"recommendations":'
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


def _iso(at: np.datetime64) -> str:
    """`2021-12-01T14:30:00`, with a fraction only when there is one."""
    return cast(datetime, at.astype("datetime64[us]").item()).isoformat()
