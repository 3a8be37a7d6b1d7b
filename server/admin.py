"""Guards for the HTTP surface: the admin bearer token, request-body limits, model names.

Model control (repository index, load, unload) is off unless `server.admin_token` is set; then a
request must carry `Authorization: Bearer <token>`. Every POST body is read through `read_body`,
which stops at `server.max_body_bytes` (also after gzip/deflate decoding) with HTTP 413.
"""

from __future__ import annotations

import hmac
import zlib

from starlette.requests import Request

from feedrank.server.repository import InvalidName, check_name

__all__ = ["ApiError", "InvalidName", "check_name", "check_admin", "read_body"]


class ApiError(Exception):
    """An error answered as `{"error": message}` with `status` (Triton's JSON error shape)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def check_admin(request: Request, token: str | None) -> None:
    if token is None:
        raise ApiError(403, "model control is disabled (set server.admin_token to enable it)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        raise ApiError(401, "model control needs 'Authorization: Bearer <admin token>'",
                       {"WWW-Authenticate": 'Bearer realm="feedrank"'})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body larger than the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return _decode(b"".join(chunks), request.headers.get("content-encoding"), limit)


def _decode(body: bytes, encoding: str | None, limit: int) -> bytes:
    if encoding in (None, "", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ApiError(415, f"unsupported Content-Encoding '{encoding}' (gzip, deflate)")
    # gzip: header + deflate stream; "deflate" in HTTP means the zlib format
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        body = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ApiError(400, f"request body is not valid {encoding}: {error}") from None
    if len(body) > limit:
        raise _too_large(limit)
    return body
