"""Validation of the feed endpoint's query string: every problem named by field, none guessed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from feedrank.server.errors import FieldErrors

ALLOWED = ("id", "time", "limit")
DEFAULT_LIMIT = 5
MAX_LIMIT = 100
INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")
# the ISO-8601 forms the feed documents; fromisoformat alone also takes basic forms of any length
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


@dataclass(frozen=True)
class FeedQuery:
    user_id: int
    at: np.datetime64  # naive UTC world time, microseconds
    limit: int


def parse_feed_query(
    items: Iterable[tuple[str, str]], allowed: tuple[str, ...] = ALLOWED
) -> FeedQuery:
    """Parse `id`, `time`, `limit` from (key, value) pairs; raise FieldErrors with every
    problem. `allowed`: the parameters this endpoint takes (the others are refused by name)."""
    parsed = _parse(items, allowed, (("id", _user_id), ("time", parse_time), ("limit", _limit)))
    return FeedQuery(parsed["id"], parsed["time"], parsed["limit"])


def parse_time_query(items: Iterable[tuple[str, str]]) -> np.datetime64:
    """`time` alone, checked as the feed checks it."""
    return _parse(items, ("time",), (("time", parse_time),))["time"]


def _parse(
    items: Iterable[tuple[str, str]],
    allowed: tuple[str, ...],
    parsers: tuple[tuple[str, Callable[[str | None], Any]], ...],
) -> dict[str, Any]:
    values: dict[str, list[str]] = {}
    for key, value in items:
        values.setdefault(key, []).append(value)
    problems = [
        {"field": key, "problem": f"unknown parameter (allowed: {', '.join(allowed)})"}
        for key in values
        if key not in allowed
    ]
    problems += [
        {"field": key, "problem": "given more than once"}
        for key, given in values.items()
        if key in allowed and len(given) > 1
    ]
    single = {key: given[0] for key, given in values.items() if key in allowed}
    parsed: dict[str, Any] = {}
    for field, parse in parsers:
        try:
            parsed[field] = parse(single.get(field))
        except ValueError as error:
            problems.append({"field": field, "problem": str(error)})
    if problems:
        raise FieldErrors("invalid query parameters", problems)
    return parsed


def _integer(text: str, what: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{what} must be an integer in decimal digits, got {text[:40]!r}")
    return int(text)


def _user_id(text: str | None) -> int:
    if text is None:
        raise ValueError("required")
    user_id = _integer(text, "user id")
    if not 0 <= user_id <= INT64_MAX:
        raise ValueError(f"user id must be between 0 and {INT64_MAX}, got {user_id}")
    return user_id


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    limit = _integer(text, "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def parse_time(text: str | None) -> np.datetime64[datetime]:
    """ISO-8601 with `T` or a space, optional seconds/fraction/offset -> naive UTC; absent = now."""
    if text is None:
        moment = datetime.now(UTC)
    else:
        try:
            if not _TIME.fullmatch(text):
                raise ValueError
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"not an ISO-8601 date-time (e.g. 2021-12-01T14:30:00): {text[:40]!r}"
            ) from None
    if moment.tzinfo is not None:
        # world time is UTC without an offset: an offset moves the moment into UTC
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"out of range once converted to UTC: {text!r}") from None
    return np.datetime64(moment, "us")
