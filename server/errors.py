"""One error model for every route: one exception family, one JSON shape.

`ApiError` is a Starlette `HTTPException` with the message and any extra fields of the body;
`FieldErrors` is the 422 that names every bad field at once (the feed's query parameters, posted
events). The app's exception handlers (`exception_handlers`) answer them, Starlette's own 404 and
405, and any unexpected fault, through `error_response`: the one place an error body is built,
`{"error": "...", ...}` as Triton's HTTP endpoints answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(HTTPException):
    """An answerable error: `status`, `message`, optional headers and extra body fields."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status, message, headers)
        self.status, self.message, self.extra = status, message, extra

    def __str__(self) -> str:
        return self.message

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.headers, **self.extra)


class FieldErrors(ApiError):
    """Bad input named field by field: `problems` is a list of {"field", "problem"}."""

    def __init__(self, title: str, problems: list[dict[str, str]]) -> None:
        super().__init__(422, title, fields=problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(f"{p['field']}: {p['problem']}" for p in self.problems)


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's refusals (no such route, a method not allowed) and every ApiError."""
    if isinstance(exc, ApiError):
        return exc.response()
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no such endpoint: {request.url.path}",
        405: f"method {request.method} not allowed on {request.url.path}",
    }
    return error_response(exc.status_code, message.get(exc.status_code, exc.detail), exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """A fault no handler expected: a JSON 500 (the traceback goes to the server log)."""
    return error_response(500, f"internal error: {type(exc).__name__}")


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: internal_error}
