"""Connection limits uvicorn's httptools protocol lacks, and overload answered at once.

uvicorn limits neither the size nor the number of request headers (a 50 MB header is read into
memory), nor how long a client may take to send them (any byte cancels its keep-alive timer, so
a connection that never finishes its headers stays open for ever), nor how many connections are
open (idle sockets exhaust the file limit). `guarded_protocol` adds:

- a head deadline: a connection must finish a request's headers within `header_timeout_s` of
  opening or of its previous answer, else it gets 408 and is closed (slow or idle clients);
- at most `max_header_bytes` of request line and headers and `max_headers` header lines: 431;
- at most `max_connections` open connections: the next is answered 503 with `Retry-After`.

`Overload` (ASGI middleware) answers 503 with `Retry-After` at once when `max_inflight` requests
are already being handled, instead of queueing them into unbounded latency. `RawPathGuard`
refuses an encoded '/' in a path.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from feedrank.server.errors import error_response

RETRY_AFTER_S = "1"
_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class Limits:
    max_connections: int
    header_timeout_s: float
    max_header_bytes: int
    max_headers: int


def guarded_protocol(limits: Limits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol under `limits` (pass as `uvicorn.run(..., http=...)`)."""

    class GuardedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _awaiting_head = True
        _head_bytes = 0
        _header_lines = 0
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(
                    503, f"more than {limits.max_connections} open connections", retry=True
                )
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._awaiting_head:
                # count raw bytes before the parser buffers them: a huge header never lands
                head_end = data.find(b"\r\n\r\n")
                seen = len(data) if head_end < 0 else head_end + 4
                self._head_bytes += seen
                if self._head_bytes > limits.max_header_bytes:
                    self._refuse(
                        431, f"request line and headers over {limits.max_header_bytes} bytes"
                    )
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._awaiting_head, self._header_lines = True, 0

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_lines += 1
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            self._awaiting_head, self._head_bytes = False, 0
            if self._header_lines > limits.max_headers:
                self._refuse(431, f"more than {limits.max_headers} header lines")
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._awaiting_head = True
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._awaiting_head and not self.transport.is_closing():
                self._refuse(
                    408, f"request headers not received within {limits.header_timeout_s:g} s"
                )

        def _refuse(self, status: int, message: str, retry: bool = False) -> None:
            """Answer with the JSON error shape and close: nothing more is read."""
            self._refused = True
            self._disarm()
            body = json.dumps({"error": message}).encode()
            head = [
                b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
                b"content-type: application/json",
                b"content-length: %d" % len(body),
                b"connection: close",
            ]
            if retry:
                head.append(b"retry-after: " + RETRY_AFTER_S.encode())
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            self.transport.close()

    return GuardedProtocol


class Overload:
    """503 + Retry-After at once when `max_inflight` HTTP requests are already in progress."""

    def __init__(self, app: ASGIApp, max_inflight: int) -> None:
        self.app, self.max_inflight = app, max_inflight
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            response = error_response(
                503,
                f"overloaded: {self.max_inflight} requests in progress",
                headers={"Retry-After": RETRY_AFTER_S},
            )
            await response(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


class RawPathGuard:
    """Refuses a path with an encoded '/': Starlette routes on the decoded path, so
    `/post%2Frecommendations/` would otherwise reach the feed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            response = error_response(400, "path: an encoded '/' (%2F) is not allowed")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
