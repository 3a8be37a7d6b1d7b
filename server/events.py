"""`POST /feed/events`: clients report what users saw and liked; the feed learns their likes.

The body is a JSON array of feed_data rows, or `{"events": [...]}`:
`{"user_id": 1, "post_id": 2, "action": "like", "timestamp": "2021-12-01T14:30:05"}`
(`action` is `view` or `like`; a `view` may carry `target`, 0 or 1). A batch is validated whole:
any problem rejects it with a 422 naming every bad field (`events[3].post_id`), and nothing of it
is kept, so a client can fix and resend without duplicates. An accepted batch is published to
the store the serving processes share (server/shared_likes.py: the events log folder
`LOG/events-*.jsonl`, on disk before the 200 leaves, or PostgreSQL) and its likes join
`LiveLikes` (server/live_likes.py), so the next feed request excludes a post liked before its
`time` even though the feature snapshot does not know the like. At start-up the server loads
every like of that store, so likes accepted before a restart, or through another process,
stay excluded. With
`server.events_token` set, posting needs `Authorization: Bearer <token>`.

Only exclusion learns from these likes; the models' history features stay the snapshot's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.errors import FeedrankError
from feedrank.server.admin import batch_items, check_bearer, read_body
from feedrank.server.errors import ApiError, FieldErrors, error_response
from feedrank.server.exposure_log import encode_lines, read_query
from feedrank.server.live_likes import LiveLikesFull
from feedrank.server.params import INT64_MAX, parse_time

ACTIONS = ("view", "like")
FIELDS = ("user_id", "post_id", "action", "timestamp", "target")
_FIELD_SET = frozenset(FIELDS) - {"target"}
# isoformat() of a whole or fractional second: a timestamp in it is logged as given
_CANONICAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.(?!000000)[0-9]{6})?"
)
COLUMNS = {
    "timestamp": "TIMESTAMP",
    "user_id": "BIGINT",
    "post_id": "BIGINT",
    "action": "VARCHAR",
    "target": "TINYINT",
}
MAX_EVENTS = 10_000
PREFIX = "events"


class SharedStateUnavailable(FeedrankError):
    """The store the serving processes share cannot take a batch now: nothing of it was kept."""


@dataclass(frozen=True)
class EventBatch:
    user_id: np.ndarray  # int64
    post_id: np.ndarray  # int64
    liked: np.ndarray  # bool: action == "like"
    timestamp: np.ndarray  # datetime64[us], naive UTC world time
    records: list[dict]  # as logged


def _invalid(problems: list[dict[str, str]]) -> FieldErrors:
    return FieldErrors("invalid feed events", problems)


def log_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob(f"{PREFIX}-*.jsonl"))


def query(files: list[Path]) -> str:
    """The DuckDB query that reads events log files as feed_data rows, typed."""
    return (
        "SELECT timestamp, user_id, post_id, action, target FROM "
        f"({read_query(files, COLUMNS, 'user_id')})"
    )


def parse_events(body: bytes, known_post: np.ndarray) -> EventBatch:
    """Validate a request body; raise FieldErrors naming every problem. `known_post` is a
    boolean table indexed by post id."""
    events = batch_items(body, "events", MAX_EVENTS, "invalid feed events")
    batch = _plain_batch(events, known_post)
    if batch is not None:
        return batch
    problems: list[dict[str, str]] = []
    rows = [_event(i, e, known_post, problems) for i, e in enumerate(events)]
    if problems:
        raise _invalid(problems)
    return EventBatch(
        np.array([r["user_id"] for r in rows], np.int64),
        np.array([r["post_id"] for r in rows], np.int64),
        np.array([r["action"] == "like" for r in rows]),
        np.array([r["timestamp"] for r in rows], "datetime64[us]"),
        rows,
    )


def _plain_batch(events: list, known_post: np.ndarray) -> EventBatch | None:
    """The common batch checked column by column: events with exactly user_id, post_id, action
    and timestamp, ids in range, known posts, timestamps already in canonical form (what
    `_event` would log). None when anything is unusual: `_event` then checks each event and
    names every problem."""
    if not all(type(e) is dict and e.keys() == _FIELD_SET for e in events):
        return None
    users, posts = [e.get("user_id") for e in events], [e.get("post_id") for e in events]
    actions, stamps = [e.get("action") for e in events], [e.get("timestamp") for e in events]
    if not (
        all(type(v) is int and 0 <= v <= INT64_MAX for v in users)
        and all(type(v) is int and 0 <= v < len(known_post) for v in posts)
        and all(a == "like" or a == "view" for a in actions)
        and all(type(t) is str and _CANONICAL.fullmatch(t) for t in stamps)
    ):
        return None
    post_id = np.array(posts, np.int64)
    if not known_post[post_id].all():
        return None
    try:
        timestamp = np.array(stamps, "datetime64[us]")
    except ValueError:  # a canonical-looking but impossible date
        return None
    return EventBatch(
        np.array(users, np.int64),
        post_id,
        np.array([a == "like" for a in actions]),
        timestamp,
        events,
    )


def _event(i: int, event: Any, known_post: np.ndarray, problems: list) -> dict:
    def problem(field: str, text: str) -> None:
        problems.append({"field": f"events[{i}]{'.' + field if field else ''}", "problem": text})

    if not isinstance(event, dict):
        problem("", "an object with user_id, post_id, action, timestamp")
        return {}
    for key in event.keys() - FIELDS:
        problem(key, f"unknown field (allowed: {', '.join(FIELDS)})")
    row: dict[str, Any] = {}
    for key in ("user_id", "post_id"):
        value = event.get(key)
        if value is None:
            problem(key, "required")
        elif type(value) is not int or not 0 <= value <= INT64_MAX:
            problem(key, f"a non-negative integer, got {value!r}")
        else:
            row[key] = value
    if "post_id" in row and not (row["post_id"] < len(known_post) and known_post[row["post_id"]]):
        problem("post_id", f"unknown post {row['post_id']}")
    action = event.get("action")
    if action not in ACTIONS:
        problem("action", f"'view' or 'like', got {action!r}")
    row["action"] = action
    if "target" in event and (
        action != "view" or type(event["target"]) is not int or event["target"] not in (0, 1)
    ):
        problem("target", "only on a view, 0 or 1")
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        problem("timestamp", "required" if stamp is None else f"an ISO-8601 string, got {stamp!r}")
    else:
        try:
            row["timestamp"] = parse_time(stamp).item().isoformat()
        except ValueError as error:
            problem("timestamp", str(error))
    if "target" in event:
        row["target"] = event["target"]
    return row


def accept(body: bytes, known_post: np.ndarray) -> tuple[EventBatch, bytes]:
    """A validated batch and its log lines (run in a worker thread: a batch of 10,000 events
    takes tens of milliseconds to check and encode)."""
    batch = parse_events(body, known_post)
    received = datetime.now(UTC).isoformat()
    return batch, encode_lines([{**r, "server_time": received} for r in batch.records])


async def post_events(request: Request) -> Response:
    started = time.perf_counter()
    service = request.app.state.feed
    settings = request.app.state.settings.server
    reserved = 0
    try:
        if settings.events_token is not None:
            check_bearer(request, settings.events_token, "posting feed events")
        body = await read_body(request, settings.max_body_bytes)
        batch, lines = await run_in_threadpool(accept, body, service.catalog.known)
        reserved = int(batch.liked.sum())
        service.live_likes.reserve(reserved)
        await service.shared.publish(batch, lines)
    except ApiError as error:  # unauthorised, too large, bad encoding, invalid events
        response = error.response()
    except LiveLikesFull as error:
        response = error_response(503, str(error))
    except SharedStateUnavailable as error:  # nothing kept: the client may send it again
        service.live_likes.release(reserved)
        response = error_response(503, str(error))
    except OSError as error:  # not on disk: not accepted, and not applied
        service.live_likes.release(reserved)
        response = error_response(503, f"events log unavailable: {error}")
    else:
        service.live_likes.add(
            batch.user_id[batch.liked],
            batch.post_id[batch.liked],
            batch.timestamp[batch.liked],
            reserved,
        )
        service.metrics.live_likes.set(len(service.live_likes))
        response = JSONResponse({"accepted": len(batch.records), "likes": reserved})
    service.metrics.observe_events(response.status_code, time.perf_counter() - started)
    return response
