"""Guards for the HTTP surface: the admin bearer token, request-body limits, model names.

Model control (repository index, load, unload) is off unless `server.admin_token` is set; then a
request must carry `Authorization: Bearer <token>`. Every POST body is read through `read_body`,
which stops at `server.max_body_bytes` (also after gzip/deflate decoding) with HTTP 413.
"""

from __future__ import annotations

import hmac
import json
import re
import zlib
from typing import Any

import orjson
from starlette.requests import Request

from feedrank.server.errors import ApiError, FieldErrors
from feedrank.server.repository import InvalidName, check_name

__all__ = [
    "InvalidName",
    "check_admin",
    "check_bearer",
    "batch_items",
    "check_name",
    "decimal",
    "json_object",
    "parse_json",
    "read_body",
]

# ASCII only: str.isdigit() and int() also take '²' and other scripts' digits; 18 digits fit int64
_DECIMAL = re.compile(r"[0-9]{1,18}")


def parse_json(body: bytes, what: str) -> Any:
    """A request's JSON ({} when empty); any problem, nesting too deep included, is a 400."""
    try:
        return json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as problem:
        raise ApiError(400, f"failed to parse the {what} JSON: {problem}") from None


def batch_items(body: bytes, key: str, most: int, title: str) -> list:
    """The items of a batch body: a non-empty JSON array, or an object with one under `key`,
    of at most `most` items; else a 422 (`title`) naming the body or `key`."""
    try:
        payload = orjson.loads(body)  # also refuses nesting deeper than 1,024
    except ValueError as error:
        raise FieldErrors(title, [{"field": "body", "problem": f"not JSON: {error}"}]) from None
    items = payload.get(key) if isinstance(payload, dict) else payload
    if not isinstance(items, list) or not items:
        problem = f'a non-empty JSON array of {key}, or an object with one under "{key}"'
        raise FieldErrors(title, [{"field": key, "problem": problem}])
    if len(items) > most:
        problem = f"{len(items)} {key}; at most {most} per request"
        raise FieldErrors(title, [{"field": key, "problem": problem}])
    return items


def json_object(value: Any, what: str) -> dict:
    """An optional JSON object field (absent is empty); anything else is a 400 naming it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def decimal(text: str) -> int | None:
    """A non-negative integer written in at most 18 ASCII digits, else None."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def check_admin(request: Request, token: str | None) -> None:
    if token is None:
        raise ApiError(403, "model control is disabled (set server.admin_token to enable it)")
    check_bearer(request, token, "model control")


def check_bearer(request: Request, token: str, what: str) -> None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(
            401,
            f"{what} needs 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="feedrank"'},
        )


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
