"""`feedrank serve`: the served application on uvicorn.

The feed server (server/: the feed, the router, the KServe v2 routes, /metrics, the feed
explorer) with the pages of the A/B stage (ab/live.py: the live experiment page). This module
composes the two, so it sits above both stages, beside the command line itself.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import logging.config
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from feedrank.errors import FeedrankError
from feedrank.settings import ServerSettings, Settings, default, describe, load_settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

SETTINGS_VARIABLE = "FEEDRANK_SERVE_SETTINGS"  # the settings, as JSON, for each worker
WORKERS_VARIABLE = "FEEDRANK_SERVE_WORKERS"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="serve feed recommendations over HTTP",
        description="Serve the feed, the router state, the KServe v2 routes, /metrics, the "
        "feed explorer (/explorer) and the live experiment page (/experiment).",
        epilog="example:\n  feedrank serve --world data/world --repository model_repository "
        "--port 8000",
    )
    serve.add_argument("--world", type=Path, help=f"world folder (default: {default('world')})")
    serve.add_argument(
        "--repository",
        type=Path,
        help=f"model repository with router.toml (default: {default('repository')})",
    )
    serve.add_argument("--host", help=f"bind address (default: {default('server.host')})")
    serve.add_argument("--port", type=int, help=f"port (default: {default('server.port')})")
    serve.add_argument(
        "--log",
        type=Path,
        dest="log_dir",
        help=f"exposure log folder (default: {default('log_dir')})",
    )
    serve.add_argument(
        "--dynamic-batching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="coalesce concurrent requests into one backend call "
        f"(default: {default('server.dynamic_batching')})",
    )
    serve.add_argument(
        "--fast-path",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rank with the ranker each model's config.pbtxt declares (the fast path for "
        "published models); --no-fast-path: with the config's backend "
        f"(default: {default('server.fast_path')})",
    )
    serve.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fsync the exposure log before each answer leaves "
        f"(default: {default('exposure_log.fsync')})",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="server log lines: text with ISO timestamps, or one JSON object "
        "per line for log shippers",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (method, path, status, duration, request id)",
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes serving the port, each with the whole state loaded; they share posted "
        "likes through the log folder, or server.state_url",
    )
    serve.add_argument(
        "--engine",
        choices=("uvicorn", "ray"),
        default="uvicorn",
        help="uvicorn: this machine's processes; ray: a Ray Serve application (docs/deploy.md)",
    )
    serve.add_argument(
        "--replicas", type=_positive, default=2, help="--engine ray: replicas to start with"
    )
    serve.add_argument(
        "--min-replicas", type=_positive, help="--engine ray: autoscale down to this many"
    )
    serve.add_argument(
        "--max-replicas", type=_positive, help="--engine ray: autoscale up to this many"
    )
    serve.add_argument(
        "--ray-address",
        help="--engine ray: join the Ray cluster at this address (default: start a local one)",
    )
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from feedrank.server.request_log import log_config

    settings = _settings(args)
    logs = log_config(settings.server.log_format)
    logging.config.dictConfig(logs)
    _raise_file_limit()
    if args.engine == "ray":
        from feedrank.ray_engine import Scale, run

        if (args.min_replicas is None) != (args.max_replicas is None):
            raise FeedrankError("--min-replicas and --max-replicas go together")
        run(settings, Scale(args.replicas, args.min_replicas, args.max_replicas), args.ray_address)
        return 0
    options = {
        "host": settings.server.host,
        "port": settings.server.port,
        # uvicorn's access log stays off: ours (--access-log, request_log.py) carries the
        # request id, and every feed answer is in the exposure log anyway
        "access_log": False,
        "log_level": "info",
        "log_config": logs,
        # annotated int, but uvicorn only hands it to loop.call_later: fractions work
        "timeout_keep_alive": settings.server.keep_alive_s,
    }
    if args.workers == 1:
        uvicorn.run(create(settings), http=_protocol(settings), **options)  # type: ignore[arg-type]
        return 0
    from feedrank.server.app import check_inputs

    check_inputs(settings)  # what each worker would refuse, said once before they start
    # each worker is a process of its own: it builds the app from these settings
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    os.environ[WORKERS_VARIABLE] = str(args.workers)
    uvicorn.run(
        "feedrank.serve:worker_app",
        factory=True,
        workers=args.workers,
        http="feedrank.serve:worker_protocol",
        **options,  # type: ignore[arg-type]
    )
    return 0


def create(settings: Settings) -> Starlette:
    """The served application: the feed server with the A/B stage's pages."""
    from feedrank.ab.live import experiment_pages
    from feedrank.server.app import create_app

    return create_app(settings, pages=[experiment_pages])


def worker_app() -> Starlette:
    """`--workers`: the app factory each worker process calls. A scrape of the shared port
    reaches any one worker, so each also serves its own /metrics on the first free port of
    `server.port + 1 ...` (one per worker)."""
    from feedrank.server.shared_likes import replica_name

    settings = _worker_settings()
    app = create(settings)
    ports = range(settings.server.port + 1, settings.server.port + 1 + _workers())
    app.state.feed.metrics.listen_on_any(settings.server.host, ports, replica_name())
    return app


def _workers() -> int:
    return int(os.environ[WORKERS_VARIABLE])


def worker_protocol(**kwargs: Any) -> asyncio.Protocol:
    """`--workers`: the guarded HTTP protocol of each worker's connections."""
    return _worker_protocol()(**kwargs)


@functools.cache
def _worker_settings() -> Settings:
    return Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])


@functools.cache
def _worker_protocol() -> type[asyncio.Protocol]:
    return _protocol(_worker_settings())


def _protocol(settings: Settings) -> type[asyncio.Protocol]:
    from feedrank.server.http_guard import Limits, guarded_protocol

    limits = settings.server
    return guarded_protocol(
        Limits(
            limits.max_connections,
            limits.header_timeout_s,
            limits.max_header_bytes,
            limits.max_headers,
        )
    )


def _settings(args: argparse.Namespace) -> Settings:
    server = {
        "host": args.host,
        "port": args.port,
        "dynamic_batching": args.dynamic_batching,
        "fast_path": args.fast_path,
        "log_format": args.log_format,
        "access_log": args.access_log or None,
    }
    try:
        settings = load_settings(world=args.world, repository=args.repository, log_dir=args.log_dir)
        settings.server = ServerSettings.model_validate(
            settings.server.model_dump() | {k: v for k, v in server.items() if v is not None}
        )
    except ValidationError as error:
        raise FeedrankError(describe(error)) from None
    if args.fsync is not None:
        settings.exposure_log.fsync = args.fsync
    return settings


def _raise_file_limit() -> None:
    """Open files up to the hard limit: each connection is one (server.max_connections caps
    them below it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
