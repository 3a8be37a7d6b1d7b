"""`POST /feed/events`: clients report what users saw and liked; the feed learns their likes.

The body is a JSON array of feed_data rows, or `{"events": [...]}`:
`{"user_id": 1, "post_id": 2, "action": "like", "timestamp": "2021-12-01T14:30:05"}`
(`action` is `view` or `like`; a `view` may carry `target`, 0 or 1). A batch is validated whole:
any problem rejects it with a 422 naming every bad field (`events[3].post_id`), and nothing of it
is kept, so a client can fix and resend without duplicates. An accepted batch is appended to
`LOG/events-*.jsonl` (the exposure log's durable writer: on disk before the 200 leaves) and its
likes join `LiveLikes`, so the next feed request excludes a post liked before its `time` even
though the feature snapshot does not know the like. At start-up the server replays the events
log, so likes accepted before a restart stay excluded.

Only exclusion learns from these likes; the models' history features stay the snapshot's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feedrank.server.admin import ApiError, read_body
from feedrank.server.exposure_log import read_query
from feedrank.server.params import INT64_MAX, parse_time

ACTIONS = ("view", "like")
FIELDS = ("user_id", "post_id", "action", "timestamp", "target")
COLUMNS = {"timestamp": "TIMESTAMP", "user_id": "BIGINT", "post_id": "BIGINT",
           "action": "VARCHAR", "target": "TINYINT"}
MAX_EVENTS = 10_000
PREFIX = "events"


@dataclass(frozen=True)
class EventBatch:
    user_id: np.ndarray    # int64
    post_id: np.ndarray    # int64
    liked: np.ndarray      # bool: action == "like"
    timestamp: np.ndarray  # datetime64[us], naive UTC world time
    records: list[dict]    # as logged


class EventError(ValueError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))


class LiveLikes:
    """Likes reported since the feature snapshot, per user, kept on the event loop's thread."""

    def __init__(self) -> None:
        self._likes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # user -> (times, post ids)

    def add(self, user_id: np.ndarray, post_id: np.ndarray, timestamp: np.ndarray) -> None:
        for user in np.unique(user_id):
            mine = user_id == user
            times, posts = self._likes.get(int(user), (np.empty(0, "datetime64[us]"),
                                                       np.empty(0, np.int64)))
            self._likes[int(user)] = (np.concatenate([times, timestamp[mine]]),
                                      np.concatenate([posts, post_id[mine]]))

    def liked_before(self, user_id: int, at: np.datetime64) -> np.ndarray:
        times, posts = self._likes.get(user_id, (None, None))
        return np.empty(0, np.int64) if times is None else posts[times < at]

    @property
    def users(self) -> int:
        return len(self._likes)

    def replay(self, log_dir: Path) -> int:
        """Add every like of `LOG/events-*.jsonl`; returns how many."""
        files = log_files(log_dir)
        if not files:
            return 0
        likes = duckdb.sql(f"SELECT user_id, post_id, timestamp FROM ({query(files)}) "
                           "WHERE action = 'like'").fetchnumpy()
        self.add(likes["user_id"], likes["post_id"],
                 likes["timestamp"].astype("datetime64[us]"))
        return len(likes["user_id"])


def log_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob(f"{PREFIX}-*.jsonl"))


def query(files: list[Path]) -> str:
    """The DuckDB query that reads events log files as feed_data rows, typed."""
    return ("SELECT timestamp, user_id, post_id, action, target FROM "
            f"({read_query(files, COLUMNS, 'user_id')})")


def parse_events(body: bytes, known_post: np.ndarray) -> EventBatch:
    """Validate a request body; raise EventError naming every problem. `known_post` is a
    boolean table indexed by post id."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise EventError([{"field": "body", "problem": f"not JSON: {error}"}]) from None
    events = payload.get("events") if isinstance(payload, dict) else payload
    if not isinstance(events, list) or not events:
        raise EventError([{"field": "events", "problem": "a non-empty JSON array of events, or "
                           "an object with one under \"events\""}])
    if len(events) > MAX_EVENTS:
        raise EventError([{"field": "events",
                           "problem": f"{len(events)} events; at most {MAX_EVENTS} per request"}])
    problems: list[dict[str, str]] = []
    rows = [_event(i, e, known_post, problems) for i, e in enumerate(events)]
    if problems:
        raise EventError(problems)
    return EventBatch(np.array([r["user_id"] for r in rows], np.int64),
                      np.array([r["post_id"] for r in rows], np.int64),
                      np.array([r["action"] == "like" for r in rows]),
                      np.array([r["timestamp"] for r in rows], "datetime64[us]"), rows)


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
    if "target" in event and (action != "view" or type(event["target"]) is not int
                              or event["target"] not in (0, 1)):
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


async def post_events(request: Request) -> Response:
    started = time.perf_counter()
    service = request.app.state.feed
    try:
        body = await read_body(request, request.app.state.settings.server.max_body_bytes)
        batch = parse_events(body, service.catalog.known)
        received = datetime.now(UTC).isoformat()
        await service.events_log.write_many([{**r, "server_time": received}
                                             for r in batch.records])
    except ApiError as error:  # body too large, or an unsupported encoding
        response = JSONResponse({"error": error.message}, status_code=error.status)
    except EventError as error:
        response = JSONResponse({"error": "invalid feed events", "fields": error.problems},
                                status_code=422)
    except OSError as error:  # not on disk: not accepted, and not applied
        response = JSONResponse({"error": f"events log unavailable: {error}"}, status_code=503)
    else:
        service.live_likes.add(batch.user_id[batch.liked], batch.post_id[batch.liked],
                               batch.timestamp[batch.liked])
        response = JSONResponse({"accepted": len(batch.records),
                                 "likes": int(batch.liked.sum())})
    service.metrics.observe_events(response.status_code, time.perf_counter() - started)
    return response
