"""`POST /posts` and `GET /posts/{post_id}`: new posts join the feed while it serves.

The body is a JSON array of post_text_df rows, or `{"posts": [...]}`:
`{"post_id": 7024, "text": "...", "topic": "tech"}`. A batch is validated whole: an id the
catalogue already has (or the batch repeats), an empty or over-long text
(`server.max_post_chars`), a topic the catalogue does not know, an unknown field each get a 422
naming the field (`posts[2].topic`), and nothing of the batch is kept.

An accepted batch: every built model version computes the posts' features through its own text
pipeline (the ONNX files of its `text_pipeline/` folder, the code the build ran on the
catalogue); the posts are written to the log folder (`LOG/posts-*.jsonl`, on disk before the
200); then the versions' candidates and the catalogue gain them at once, so every feed requested
after the answer scores them. A new post's history features are those of a post nobody has seen
yet, as for a post at build time. The fast path rebuilds its tables for the grown catalogue in
the background; the plain model ranks meanwhile, with the same scores. At start-up the server
replays the log. With `server.posts_token` set, posting needs `Authorization: Bearer <token>`.

Posts are in the log folder of the server that accepted them: replicas sharing that folder rank
them from their next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.server.admin import batch_items, check_bearer, decimal, read_body
from feedrank.server.catalogue import POST_SCHEMA, InputsCache, PostCatalog
from feedrank.server.errors import ApiError, FieldErrors, error_response
from feedrank.server.exposure_log import ExposureLog, encode_lines, read_query
from feedrank.server.feed import FeedService
from feedrank.server.params import INT64_MAX
from feedrank.server.repository import LoadedVersion

log = logging.getLogger("feedrank.posts")
FIELDS = ("post_id", "text", "topic")
MAX_POSTS = 1_000
# tables indexed by post id grow with the largest id: a new id stays near the catalogue's
MAX_ID_GAP = 1_000_000
PREFIX = "posts"
COLUMNS = {"post_id": "BIGINT", "text": "VARCHAR", "topic": "VARCHAR", "server_time": "VARCHAR"}


def parse_posts(body: bytes, catalog: PostCatalog, max_chars: int) -> pl.DataFrame:
    """The posts of a request body (post_id, text, topic); FieldErrors naming every problem."""
    posts = batch_items(body, "posts", MAX_POSTS, "invalid posts")
    problems: list[dict[str, str]] = []
    seen: set[int] = set()
    rows = [_post(i, post, catalog, max_chars, seen, problems) for i, post in enumerate(posts)]
    if problems:
        raise _invalid(problems)
    return pl.DataFrame(rows, schema=POST_SCHEMA, orient="row")


def _invalid(problems: list[dict[str, str]]) -> FieldErrors:
    return FieldErrors("invalid posts", problems)


def _post(
    i: int, post: Any, catalog: PostCatalog, max_chars: int, seen: set[int], problems: list
) -> tuple:
    def problem(field: str, text: str) -> None:
        problems.append({"field": f"posts[{i}]{'.' + field if field else ''}", "problem": text})

    if not isinstance(post, dict):
        problem("", "an object with post_id, text, topic")
        return ()
    for key in post.keys() - FIELDS:
        problem(key, f"unknown field (allowed: {', '.join(FIELDS)})")
    post_id, text, topic = (post.get(key) for key in FIELDS)
    largest = catalog.known.size - 1 + MAX_ID_GAP
    if post_id is None:
        problem("post_id", "required")
    elif type(post_id) is not int or not 0 <= post_id <= INT64_MAX:
        problem("post_id", f"a non-negative integer, got {post_id!r}")
    elif catalog.contains_id(post_id):
        problem("post_id", f"post {post_id} exists")
    elif post_id in seen:
        problem("post_id", f"post {post_id} is twice in this batch")
    elif post_id > largest:
        problem("post_id", f"at most {largest} (the catalogue's largest id + {MAX_ID_GAP:,})")
    else:
        seen.add(post_id)
    if not isinstance(text, str) or not text.strip():
        problem("text", "required: a non-empty string")
    elif len(text) > max_chars:
        problem("text", f"{len(text):,} characters; at most {max_chars:,}")
    if topic not in catalog.topics:
        problem("topic", f"one of the catalogue's topics ({', '.join(catalog.topics)})")
    return (post_id, text, topic)


def posted_before(log_dir: Path, catalog: PostCatalog) -> tuple[pl.DataFrame, list[str]]:
    """The posts the log folder holds, oldest first, and when each was accepted; a post the
    world's post table has since taken in (a rebuild) is left to it, as is a second copy."""
    files = sorted(log_dir.glob(f"{PREFIX}-*.jsonl"))
    if not files:
        return pl.DataFrame(schema=POST_SCHEMA), []
    rows = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
        f"SELECT post_id, text, topic, server_time FROM ({read_query(files, COLUMNS, 'post_id')})"
    ).fetchall()
    kept: dict[int, tuple] = {}
    for post_id, text, topic, at in rows:
        if post_id in kept or catalog.contains_id(post_id):
            continue
        if topic not in catalog.topics or not text:
            log.warning(
                "posted post %d left out: an empty text, or a topic (%r) the catalogue lacks",
                post_id,
                topic,
            )
            continue
        kept[post_id] = (post_id, text, topic, at)
    table = pl.DataFrame([row[:3] for row in kept.values()], schema=POST_SCHEMA, orient="row")
    return table, [row[3] for row in kept.values()]


def replay(log_dir: Path, catalog: PostCatalog, inputs: InputsCache) -> int:
    """At start-up: the posts accepted before join the catalogue and every version's inputs."""
    posts, accepted = posted_before(log_dir, catalog)
    catalog.add(posts, accepted)
    inputs.replay(posts)
    return posts.height


def accept(
    posts: pl.DataFrame,
    versions: list[LoadedVersion],
    inputs: InputsCache,
    catalog: PostCatalog,
    write: Callable[[bytes], None],
) -> list[tuple[LoadedVersion, str]]:
    """Features for every version, durable, then live (a worker thread: the test model encodes
    the texts). `write(lines)` blocks until the log lines are on disk."""
    accepted_at = datetime.now(UTC).isoformat()

    def commit() -> None:
        write(encode_lines([{**row, "server_time": accepted_at} for row in posts.to_dicts()]))
        catalog.add(posts, [accepted_at] * posts.height)

    return inputs.add(posts, versions, commit)


async def post_posts(request: Request) -> Response:
    started = time.perf_counter()
    service = request.app.state.feed
    settings = request.app.state.settings.server
    try:
        if settings.posts_token is not None:
            check_bearer(request, settings.posts_token, "posting posts")
        body = await read_body(request, settings.max_body_bytes)
        loop = asyncio.get_running_loop()
        posts = await loop.run_in_executor(
            None, parse_posts, body, service.catalog, settings.max_post_chars
        )
        refused = await loop.run_in_executor(
            None,
            accept,
            posts,
            service.repository.loaded(),
            service.inputs,
            service.catalog,
            _blocking_writer(service.posts_log, loop),
        )
    except ApiError as error:  # unauthorised, too large, bad encoding, invalid posts
        return error.response()
    except OSError as error:  # not on disk: not accepted
        return error_response(503, f"posts log unavailable: {error}")
    ids = posts["post_id"].to_list()
    return JSONResponse(
        {
            "accepted": len(ids),
            "post_ids": ids,
            "versions": _ranking(service, ids[0]),
            "refused_by": [
                {"model": v.model, "version": v.version, "reason": reason} for v, reason in refused
            ],
            "seconds": round(time.perf_counter() - started, 4),
        }
    )


async def get_post(request: Request) -> Response:
    service = request.app.state.feed
    text = request.path_params["post_id"]
    post_id = decimal(text)
    if post_id is None:
        problem = {"field": "post_id", "problem": f"a non-negative integer, got {text!r}"}
        return FieldErrors("invalid post id", [problem]).response()
    if not service.catalog.contains_id(post_id):
        return error_response(404, f"no post {post_id}")
    return JSONResponse(
        {
            **service.catalog.post(post_id),
            "posted_at": service.catalog.posted.get(post_id),
            "versions": _ranking(service, post_id),
        }
    )


def _ranking(service: FeedService, post_id: int) -> list[dict[str, Any]]:
    """The loaded versions whose candidates include the post (a version counts once its inputs
    are built: every routed version's at start-up)."""
    out = []
    for loaded in service.repository.loaded():
        inputs = service.inputs.ready(loaded)
        if inputs is not None and inputs.has_post(post_id):
            out.append({"model": loaded.model, "version": loaded.version})
    return out


def _blocking_writer(
    posts_log: ExposureLog, loop: asyncio.AbstractEventLoop
) -> Callable[[bytes], None]:
    """`write(lines)` for a worker thread: the log's writer runs on the event loop."""

    def write(lines: bytes) -> None:
        asyncio.run_coroutine_threadsafe(posts_log.write_lines(lines), loop).result()

    return write
