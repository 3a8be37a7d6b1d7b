"""Property-based fuzzing of a real `feedrank serve` from its own `/openapi.json` (schemathesis):
valid and invalid requests to every route, never a server error, every error body JSON."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from feed_serving import ServerProcess, built_repository

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def server(tiny_world, tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz") / "log"
    with ServerProcess(
        tiny_world, built_repository(tiny_world), log, env={"FEEDRANK_SERVER__ADMIN_TOKEN": TOKEN}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def api(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_every_route_is_described(server):
    described = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path in (
        "/post/recommendations/",
        "/feed/events",
        "/posts",
        "/posts/{post_id}",
        "/router",
        "/v2",
        "/v2/health/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/repository/index",
        "/v2/repository/models/{name}/unload",
        "/metrics",
        "/openapi.json",
        "/explain/feed",
        "/explain/user",
        "/explain/random-user",
        "/experiment/status",
    ):
        assert path in described
    assert len(described) == 23


def check(case: schemathesis.Case, tally: dict) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    key = f"{case.method} {case.path}"
    tally[key] = tally.get(key, 0) + 1
    assert response.status_code < 500 or (
        response.status_code == 503 and "group" in response.json()["error"]
    ), (case.method, case.formatted_path, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.content:
        assert response.headers["content-type"][0].startswith("application/json"), response.text
        assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_server_errors_and_every_error_is_json(api, mode):
    tally: dict[str, int] = {}
    for operation in api.get_all_operations():
        strategy = operation.ok().as_strategy(generation_mode=mode)

        @given(case=strategy)
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            check(case, tally)

        try:
            fuzz()
        except Unsatisfiable:  # an operation without parameters or body has no invalid form
            assert mode is GenerationMode.NEGATIVE
    print(f"{mode.value}: {sum(tally.values())} requests over {len(tally)} operations")
    described = {f"{op.ok().method.upper()} {op.ok().path}" for op in api.get_all_operations()}
    assert set(tally) <= described
    assert len(tally) == len(described) if mode is GenerationMode.POSITIVE else len(tally) >= 5
