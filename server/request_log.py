"""Request ids, the opt-in access log, and the server's log format.

Every response carries `x-request-id`: the client's own when it sends a well-formed one
(1-64 of `A-Za-z0-9._-`), else a fresh one; and `x-feedrank-replica`, the host and process
that answered. The feed uses the same id as its answer's
`request_id`, so a client's call, the access log and the exposure log line up. With
`server.access_log` on, each request is logged (method, path, status, duration, request id)
at INFO on `feedrank.access`.

`log_config(fmt)` is the logging configuration `feedrank serve` hands to uvicorn: ISO-8601
timestamps and the level on every line, or one JSON object per line (`--log-format json`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
REPLICA = b"x-feedrank-replica"  # which process answered: several serve one port, or a balancer
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._-]{1,64}")
access = logging.getLogger("feedrank.access")


def request_id(scope: Scope) -> str:
    """The id the middleware gave this request (a fresh one outside the middleware)."""
    return scope.get("state", {}).get("request_id") or uuid.uuid4().hex


class RequestIds:
    def __init__(self, app: ASGIApp, access_log: bool = False, replica: str = "") -> None:
        self.app, self.access_log = app, access_log
        self.replica = (REPLICA, replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER)
        rid = given.decode() if given and _WELL_FORMED.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started, status = time.perf_counter(), 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (HEADER, rid.encode()),
                    self.replica,
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                took_ms = round((time.perf_counter() - started) * 1e3, 3)
                access.info(
                    "%s %s %d %.1f ms %s",
                    scope["method"],
                    scope["path"],
                    status,
                    took_ms,
                    rid,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "request_id": rid,
                        "duration_ms": took_ms,
                    },
                )


class JsonFormatter(logging.Formatter):
    FIELDS = ("method", "path", "status", "request_id", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def log_config(fmt: str) -> dict:
    """dictConfig for the root logger and uvicorn's loggers (stderr)."""
    formatter = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"()": TextFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": quiet,
            "uvicorn.error": quiet,
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
