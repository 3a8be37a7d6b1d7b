"""The feed explorer: which posts a user gets at a moment under every routed version, and why.

`/explorer` is a page shipped in the package (`static/explorer.html` and its script) that reads
three JSON endpoints. None of them writes an exposure: exposures are only real feed answers.
- `GET /explain/user?id=&time=`: the user's profile, group and likes before `time`;
- `GET /explain/feed?id=&time=&limit=`: the top `limit` posts under each (model, version) the
  router serves, whichever group the user is in, then under every other loaded version: score,
  P(like) and rank, the posts the user liked before marked as excluded, and on a generated
  world the ground truth's P(like);
- `GET /explain/random-user?time=`: a user with at least one like before `time`.
Query parameters are validated as the feed validates them, with the same messages.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedrank.server.batching import Job
from feedrank.server.catalogue import ModelUnavailable
from feedrank.server.errors import ApiError
from feedrank.server.feed import FeedService
from feedrank.server.openapi import error_body, json_body
from feedrank.server.pages import Pages
from feedrank.server.params import ALLOWED, FeedQuery, parse_feed_query, parse_time_query
from feedrank.server.ranking import rank
from feedrank.server.repository import ModelNotFound
from feedrank.world.ground_truth import GroundTruth
from feedrank.world.layout import WorldLayout

RECENT_LIKES = 5
PROFILE = ("gender", "age", "country", "city", "exp_group", "os", "source")


class Explorer:
    """What the explain endpoints read beside the feed: the world's user table and, on a
    generated world, its ground truth; both loaded on first use, not at start-up."""

    def __init__(self, service: FeedService, world: Path) -> None:
        self.service, self.layout = service, WorldLayout(world)

    @cached_property
    def users(self) -> pl.DataFrame:
        return pl.read_parquet(self.layout.users).sort("user_id")

    @cached_property
    def truth(self) -> GroundTruth | None:
        return GroundTruth.load(self.layout.root) if self.layout.ground_truth.exists() else None

    def profile(self, user_id: int, at: np.datetime64) -> dict[str, Any]:
        service = self.service
        row = self.users.filter(pl.col("user_id") == user_id).select(PROFILE).to_dicts()
        group = service.router.config.assign(user_id)
        world_posts, world_times = service.online.likes_before(user_id, at)
        posted = service.live_likes.liked_before(user_id, at)
        topics = Counter(service.catalog.post(int(p))["topic"] for p in world_posts)
        topics.update(service.catalog.post(int(p))["topic"] for p in posted)
        recent = [
            service.catalog.post(int(p)) | {"liked_at": _iso(t)}
            for p, t in zip(world_posts[::-1][:RECENT_LIKES], world_times[::-1][:RECENT_LIKES])
        ]
        return {
            "user_id": user_id,
            "time": _iso(at),
            "profile": row[0] if row else None,
            "exp_group": group.name,
            "bucket": service.router.config.bucket(user_id),
            "model": group.model,
            "version": group.version,
            "likes": int(world_posts.size + posted.size),
            "posted_likes": int(posted.size),
            "likes_by_topic": dict(topics.most_common()),
            "recent_likes": recent,
        }

    async def feed(self, query: FeedQuery) -> dict[str, Any]:
        service = self.service
        liked = service.liked_before(query.user_id, query.at)
        served: dict[tuple[str, int], list[str]] = {}
        for group in service.router.config.groups:
            served.setdefault((group.model, group.version), []).append(group.name)
        for loaded in service.repository.loaded():  # a version the router could move to
            served.setdefault((loaded.model, loaded.version), [])
        own = service.router.config.assign(query.user_id).name
        truth = await run_in_threadpool(lambda: self.truth)  # read from disk on first use
        rankings = []
        for (model, version), groups in served.items():
            ranking: dict[str, Any] = {"groups": groups, "model": model, "version": version}
            try:
                ranking |= await self._ranking(model, version, query, liked, truth)
            except (ModelNotFound, ModelUnavailable) as error:
                ranking["error"] = str(error)
            rankings.append(ranking | {"own_group": own in groups})
        return {
            "user_id": query.user_id,
            "time": _iso(query.at),
            "exp_group": own,
            "ground_truth": truth is not None,
            "rankings": rankings,
        }

    async def _ranking(
        self,
        model: str,
        version: int,
        query: FeedQuery,
        liked: np.ndarray,
        truth: GroundTruth | None,
    ) -> dict[str, Any]:
        service = self.service
        loaded = service.repository.get(model, version)
        inputs = await service.inputs.get(loaded)
        scored = await service.batcher.score(loaded.backend, Job(inputs, query.user_id, query.at))
        scores = inputs.ranking_scores(scored.scores, query.at)
        # the feed's own order with nothing excluded, cut where `limit` posts remain after
        # the exclusion: the liked posts that the feed skipped are shown, marked
        order = rank(inputs.post_ids, scores, liked[:0], query.limit + liked.size)
        excluded = np.isin(order, liked)
        order = order[: int(np.searchsorted(np.cumsum(~excluded), query.limit)) + 1]
        by_id = np.argsort(inputs.post_ids)
        position = by_id[np.searchsorted(inputs.post_ids, order, sorter=by_id)]
        true_p = (
            truth.like_probability(query.user_id, order, query.at)
            if truth is not None
            else np.full(order.size, np.nan)
        )
        posts, shown = [], 0
        for i, post_id in enumerate(order.tolist()):
            shown += not excluded[i]
            posts.append(
                self.service.catalog.post(post_id)
                | {
                    "rank": None if excluded[i] else shown,
                    "excluded": bool(excluded[i]),
                    "score": float(scores[position[i]]),
                    "probability": float(scored.scores[position[i]]),
                    "truth": None if np.isnan(true_p[i]) else float(true_p[i]),
                }
            )
        return {
            "ranker": loaded.backend.name,
            "candidates": int(inputs.post_ids.size),
            "posts": posts,
        }

    def random_user(self, at: np.datetime64) -> int | None:
        """A user chosen uniformly among the likes before `at` (so, weighted by likes)."""
        return self.service.online.history.random_liker(at, np.random.default_rng())


def explorer_pages(explorer: Explorer) -> Pages:
    async def page(request: Request) -> Response:
        return HTMLResponse(files("feedrank.server").joinpath("static/explorer.html").read_text())

    async def user(request: Request) -> Response:
        query = _query(request, limit=False)
        return JSONResponse(await run_in_threadpool(explorer.profile, query.user_id, query.at))

    async def feed(request: Request) -> Response:
        return JSONResponse(await explorer.feed(_query(request, limit=True)))

    async def random_user(request: Request) -> Response:
        at = parse_time_query(request.query_params.multi_items())
        user_id = explorer.random_user(at)
        if user_id is None:
            raise ApiError(404, f"no user has liked a post before {_iso(at)}")
        return JSONResponse({"user_id": user_id, "time": _iso(at)})

    def _query(request: Request, *, limit: bool) -> FeedQuery:
        allowed = ALLOWED if limit else ("id", "time")
        query = parse_feed_query(request.query_params.multi_items(), allowed)
        if not explorer.service.online.has_user(query.user_id):
            raise ApiError(
                404,
                f"user {query.user_id} is not among the world's users (the feed answers "
                "an unknown user with the most liked posts)",
                fields=[{"field": "id", "problem": "unknown user"}],
            )
        return query

    routes = [
        Route("/explorer", page, methods=["GET"]),
        Route("/explain/user", user, methods=["GET"]),
        Route("/explain/feed", feed, methods=["GET"]),
        Route("/explain/random-user", random_user, methods=["GET"]),
        Mount("/assets", StaticFiles(packages=[("feedrank.server", "static")])),
    ]
    return Pages(routes, OPENAPI)


def _parameter(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_ID = _parameter("id", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, required=True)
_TIME = _parameter("time", {"type": "string", "format": "date-time"})
_LIMIT = _parameter("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 5})
_ERRORS = {
    "404": error_body("the user is not among the world's users"),
    "422": json_body(
        "invalid query parameters, each named", {"$ref": "#/components/schemas/FieldErrors"}
    ),
}
OPENAPI: dict[str, Any] = {
    "/explain/user": {
        "get": {
            "summary": "Explorer: a user's profile, group and likes before a time",
            "parameters": [_ID, _TIME],
            "responses": {"200": json_body("the profile", {"type": "object"}), **_ERRORS},
        }
    },
    "/explain/feed": {
        "get": {
            "summary": "Explorer: the top posts under every routed version, with scores "
            "(no exposure is logged)",
            "parameters": [_ID, _TIME, _LIMIT],
            "responses": {
                "200": json_body(
                    "per (model, version): posts with rank, score, P(like), excluded, truth",
                    {"type": "object"},
                ),
                **_ERRORS,
                "503": error_body("a routed version's inputs are being built"),
            },
        }
    },
    "/explain/random-user": {
        "get": {
            "summary": "Explorer: a user with a like before a time",
            "parameters": [_TIME],
            "responses": {
                "200": json_body("the user id and the time", {"type": "object"}),
                "404": error_body("no like before that time"),
                "422": _ERRORS["422"],
            },
        }
    },
}


def _iso(at: np.datetime64) -> str:
    return cast(datetime, at.astype("datetime64[s]").item()).isoformat()
