"""The Starlette app: the feed endpoint, the router state, the KServe v2 routes, /metrics and
the feed explorer; pages of later stages (the live experiment page) are added by the command
that composes the service.

`create_app` loads everything the hot path needs before the server accepts a connection (the
world's online features, the model repository, the router, the post catalog, one `ModelInputs`
per routed version), so a start-up problem is a clear CLI error, not a failing first request.
The lifespan runs the background work: the router poll (re-read `R/router.toml` on change)
and, at shutdown, draining the exposure log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from feedrank.errors import FeedrankError
from feedrank.features.online import OnlineFeatures
from feedrank.server.batching import Batcher
from feedrank.server.catalogue import InputsCache, PostCatalog
from feedrank.server.errors import EXCEPTION_HANDLERS
from feedrank.server.events import PREFIX as EVENTS_PREFIX
from feedrank.server.events import post_events
from feedrank.server.explorer import Explorer, explorer_pages
from feedrank.server.exposure_log import ExposureLog
from feedrank.server.feed import FeedService, recommendations, router_state
from feedrank.server.http_guard import Overload, RawPathGuard
from feedrank.server.kserve import kserve_routes
from feedrank.server.live_likes import LiveLikes, LiveLikesFull
from feedrank.server.memory import release_free_memory
from feedrank.server.metrics import Metrics
from feedrank.server.openapi import openapi_json
from feedrank.server.pages import Pages
from feedrank.server.posts import PREFIX as POSTS_PREFIX
from feedrank.server.posts import get_post, post_posts, replay
from feedrank.server.repository import ModelRepository
from feedrank.server.request_log import RequestIds
from feedrank.server.router import Router, RouterConfigError, Servable
from feedrank.server.shared_likes import (
    LogFolder,
    PostgresLikes,
    SharedLikes,
    replica_name,
)
from feedrank.settings import Settings

log = logging.getLogger("feedrank.server")


# the pages of a later stage, made from the settings and the loaded feed service
PagesFactory = Callable[[Settings, FeedService], Pages]


def create_app(settings: Settings, pages: Sequence[PagesFactory] = ()) -> Starlette:
    service, executor = _load(settings)
    added = [explorer_pages(Explorer(service, settings.world))]
    added += [make(settings, service) for make in pages]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        interval = settings.server.poll_interval_s
        poll = asyncio.create_task(_poll_router(service.router, interval))
        watch = asyncio.create_task(service.metrics.watch_loop())
        # the loaded state is millions of long-lived objects: out of the cyclic collector's
        # sight, a collection triggered by a request's garbage stays short (no 30 ms pauses)
        gc.collect()
        gc.freeze()
        release_free_memory()
        if settings.server.repository_poll:
            service.repository.start_polling(interval)
        await service.shared.follow(service.take_likes)
        try:
            yield
        finally:
            poll.cancel()
            watch.cancel()
            await service.shared.close()
            service.repository.stop_polling()
            service.exposure_log.close()
            service.events_log.close()
            service.posts_log.close()
            executor.shutdown(wait=False)

    routes = [
        Route("/post/recommendations/", recommendations, methods=["GET"]),
        Route("/feed/events", post_events, methods=["POST"]),
        Route("/posts", post_posts, methods=["POST"]),
        Route("/posts/{post_id}", get_post, methods=["GET"]),
        Route("/router", router_state, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *kserve_routes(service.repository, settings, service.metrics, service.router),
        *(route for page in added for route in page.routes),
    ]
    middleware = [
        Middleware(RequestIds, access_log=settings.server.access_log, replica=replica_name()),
        Middleware(Overload, max_inflight=settings.server.max_inflight),
        Middleware(RawPathGuard),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings, app.state.feed = settings, service
    app.state.repository = service.repository
    app.state.openapi_pages = {path: item for page in added for path, item in page.openapi.items()}
    return app


def check_inputs(settings: Settings) -> Path:
    """The world and repository folders and the router file exist (its path); said at once,
    before anything loads."""
    for path, what in ((settings.world, "world"), (settings.repository, "model repository")):
        if not path.is_dir():
            raise FeedrankError(f"{path}: {what} folder not found")
    router_file = settings.repository / "router.toml"
    if not router_file.is_file():
        raise FeedrankError(f"{router_file}: router config not found (`feedrank build` writes one)")
    return router_file


def _load(settings: Settings) -> tuple[FeedService, ThreadPoolExecutor]:
    router_file = check_inputs(settings)
    server = settings.server
    executor = ThreadPoolExecutor(server.scoring_threads, thread_name_prefix="scoring")
    online = OnlineFeatures.load(settings.world)
    repository = ModelRepository(
        settings.repository, threads=server.intra_op_threads, fast_path=server.fast_path
    )
    repository.load_all()
    catalog = PostCatalog(settings.world)
    inputs = InputsCache(online, catalog, executor)
    posted = replay(settings.log_dir, catalog, inputs)
    live_likes = LiveLikes(server.max_live_likes)
    events_log = _log(settings, EVENTS_PREFIX)
    shared: SharedLikes = (
        LogFolder(events_log)
        if server.state_url is None
        else PostgresLikes(server.state_url, events_log, replica_name())
    )
    likes = shared.load()
    try:
        live_likes.replay(likes.user_id, likes.post_id, likes.timestamp)
    except LiveLikesFull as full:
        raise FeedrankError(f"the posted likes do not fit: {full}") from None
    replayed = len(live_likes)
    try:
        router = Router(router_file, _servable(repository, inputs))
    except RouterConfigError as error:
        raise FeedrankError(str(error)) from None
    service = FeedService(
        online=online,
        repository=repository,
        router=router,
        catalog=catalog,
        inputs=inputs,
        batcher=Batcher(
            executor,
            enabled=server.dynamic_batching,
            max_requests=server.max_batch_requests,
            max_delay_us=server.max_queue_delay_us,
            workers=server.scoring_threads,
            prepare=server.fast_path_wait,
        ),
        exposure_log=_log(settings, "exposures"),
        events_log=events_log,
        posts_log=_log(settings, POSTS_PREFIX),
        shared=shared,
        live_likes=live_likes,
        metrics=Metrics(repository),
    )
    service.metrics.live_likes.set(replayed)
    groups = ", ".join(
        f"{g.name} {g.last - g.first + 1}% -> {g.model} v{g.version}" for g in router.config.groups
    )
    log.info(
        "feed ready: %d users, %d posts (%d posted); router: %s; exposure log: %s; "
        "%d likes replayed from the %s",
        online.user_ids.size,
        service.catalog.post_ids.size,
        posted,
        groups,
        service.exposure_log.current_file,
        replayed,
        "events log folder" if server.state_url is None else "shared state in PostgreSQL",
    )
    return service, executor


def _log(settings: Settings, prefix: str) -> ExposureLog:
    """A durable JSON-lines log in the log folder: exposures, posted feed events or posts."""
    options = settings.exposure_log
    return ExposureLog(
        settings.log_dir,
        rotate_bytes=options.rotate_bytes,
        rotate_seconds=options.rotate_seconds,
        fsync=options.fsync,
        prefix=prefix,
    )


def _servable(repository: ModelRepository, inputs: InputsCache) -> Servable:
    """A routed version must be loaded and its inputs buildable; they are built here, during
    validation, so the first request after a router change finds them ready."""

    def reason(model: str, version: int) -> str | None:
        try:
            inputs.warm(repository.get(model, version))
        except Exception as error:  # ModelNotFound, or inputs that do not fit the version
            return str(error) or type(error).__name__
        return None

    return reason


async def _poll_router(router: Router, interval_s: float) -> None:
    if interval_s <= 0:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            # off the event loop: validating a new config may build a version's inputs
            await loop.run_in_executor(None, router.reload_if_changed)
        except Exception:  # the poll must outlive any one bad reload
            log.exception("router poll failed; the config in force is unchanged")
