"""Query validation of the feed endpoint, without a server (the HTTP 422s are in test_feed_e2e)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from feedrank.server.errors import FieldErrors
from feedrank.server.params import DEFAULT_LIMIT, parse_feed_query


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-12-01T14:30:00", "2021-12-01T14:30:00"),
        ("2021-12-01 14:30:00", "2021-12-01T14:30:00"),
        ("2021-12-01 14:30", "2021-12-01T14:30:00"),
        ("2021-12-01T14:30:05.250", "2021-12-01T14:30:05.250"),
        ("2021-12-01T14:30:00+03:00", "2021-12-01T11:30:00"),
        ("2021-12-01T14:30:00Z", "2021-12-01T14:30:00"),
        ("2021-12-01T01:00:00-02:30", "2021-12-01T03:30:00"),
    ],
)
def test_time_forms_become_naive_utc(text, expected):
    query = parse_feed_query([("id", "200"), ("time", text)])
    assert query.at == np.datetime64(expected, "us")
    assert query.limit == DEFAULT_LIMIT and query.user_id == 200


def test_absent_time_is_now():
    before = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    query = parse_feed_query([("id", "1")])
    after = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    assert before <= query.at <= after


@pytest.mark.parametrize(
    ("items", "field", "problem"),
    [
        ([("id", "abc")], "id", "must be an integer"),
        ([("id", "1.5")], "id", "must be an integer"),
        ([("id", "-3")], "id", "between 0 and"),
        ([("id", str(2**63))], "id", "between 0 and"),
        ([], "id", "required"),
        ([("id", "1"), ("time", "yesterday")], "time", "not an ISO-8601"),
        ([("id", "1"), ("time", "2021-13-01T00:00")], "time", "not an ISO-8601"),
        ([("id", "1"), ("time", "0001-01-01T00:00+01:00")], "time", "out of range"),
        ([("id", "1"), ("limit", "0")], "limit", "between 1 and 100"),
        ([("id", "1"), ("limit", "101")], "limit", "between 1 and 100"),
        ([("id", "1"), ("limit", "five")], "limit", "must be an integer"),
        ([("id", "1"), ("user", "2")], "user", "unknown parameter"),
        ([("id", "1"), ("id", "2")], "id", "more than once"),
    ],
)
def test_each_bad_input_names_its_field(items, field, problem):
    with pytest.raises(FieldErrors) as error:
        parse_feed_query(items)
    assert any(p["field"] == field and problem in p["problem"] for p in error.value.problems)


def test_every_problem_is_reported_at_once():
    with pytest.raises(FieldErrors) as error:
        parse_feed_query([("id", "x"), ("time", "?"), ("limit", "1000"), ("page", "2")])
    assert {p["field"] for p in error.value.problems} == {"id", "time", "limit", "page"}
