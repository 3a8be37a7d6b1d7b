"""Malformed and lenient input against a real `feedrank serve`: every refusal is a JSON 4xx that
says what is wrong, never a plain-text 500, and a refused feed writes no exposure."""

from __future__ import annotations

import json

import duckdb
import httpx
import pytest

from feedrank.server.exposure_log import query

from feed_serving import ServerProcess, built_repository, first_user, last_moment, like

ADMIN = {"Authorization": "Bearer hostile-test"}
DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000
DEEP_OBJECTS = '{"a":' * 50_000 + "1" + "}" * 50_000


@pytest.fixture(scope="module")
def server(tiny_world, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile") / "log"
    with ServerProcess(
        tiny_world,
        built_repository(tiny_world),
        log,
        env={"FEEDRANK_SERVER__ADMIN_TOKEN": "hostile-test"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def valid_input(client) -> dict:
    (spec,) = client.get("/v2/models/control").json()["inputs"]
    width = spec["shape"][1]
    return {
        "name": spec["name"],
        "shape": [2, width],
        "datatype": spec["datatype"],
        "data": [0.0] * (2 * width),
    }


def infer_cases(valid: dict) -> dict[str, dict | str]:
    def body(**changes: object) -> dict:
        return {"inputs": [{**valid, **changes}]}

    return {
        "shape with a boolean": body(shape=[True, valid["shape"][1]]),
        "input name a list": body(name=[valid["name"]]),
        "input name an object": body(name={"a": 1}),
        "input parameters a string": body(parameters="x"),
        "input parameters a list": body(parameters=[1]),
        "request parameters a list": {**body(), "parameters": [1]},
        "request parameters a string": {**body(), "parameters": "binary"},
        "outputs a number": {**body(), "outputs": 5},
        "output parameters a string": {
            **body(),
            "outputs": [{"name": "probabilities", "parameters": "x"}],
        },
        "output name a list": {**body(), "outputs": [{"name": ["probabilities"]}]},
        "an input given twice": {"inputs": [valid, valid]},
        "data nested 100,000 deep": '{"inputs": [{"name": "x", "data": ' + DEEP_ARRAYS + "}]}",
    }


def assert_json_refusal(response: httpx.Response, status: int | None = None) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    if response.request.method == "HEAD":
        return ""
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    return response.json()["error"]


def test_malformed_inference_requests_are_json_400s(client, valid_input):
    assert (
        client.post("/v2/models/control/infer", json={"inputs": [valid_input]}).status_code == 200
    )
    for case, body in infer_cases(valid_input).items():
        content = body if isinstance(body, str) else json.dumps(body)
        response = client.post("/v2/models/control/infer", content=content)
        assert assert_json_refusal(response, 400), case


@pytest.mark.parametrize("length", ["²", "9" * 5000, "-1", "٣"])
def test_a_bad_binary_header_length_is_a_400(client, valid_input, length):
    response = client.post(
        "/v2/models/control/infer",
        content=json.dumps({"inputs": [valid_input]}),
        headers={"Inference-Header-Content-Length": length.encode()},
    )
    assert "Inference-Header-Content-Length" in assert_json_refusal(response, 400)


@pytest.mark.parametrize("version", ["9" * 5000, "%C2%B2", "%D9%A3", "01"])
def test_a_bad_version_is_a_400_on_every_route(client, valid_input, version):
    base = f"/v2/models/control/versions/{version}"
    assert "invalid model version" in assert_json_refusal(
        client.post(base + "/infer", json={"inputs": [valid_input]}), 400
    )
    assert "invalid model version" in assert_json_refusal(client.get(base), 400)
    assert client.get(base + "/ready").status_code == 400


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS])
def test_deep_json_is_a_4xx_on_events_and_admin(client, body):
    events = client.post("/feed/events", content=body)
    assert assert_json_refusal(events, 422)
    for path in ("/v2/repository/index", "/v2/repository/models/control/load"):
        assert "JSON" in assert_json_refusal(client.post(path, content=body, headers=ADMIN), 400)


def test_admin_parameters_must_be_an_object(client):
    response = client.post(
        "/v2/repository/models/control/load", json={"parameters": [1]}, headers=ADMIN
    )
    assert "parameters must be a JSON object" in assert_json_refusal(response, 400)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"id": " 201 "}, "id"),
        ({"id": "201\n"}, "id"),
        ({"id": "+201"}, "id"),
        ({"id": "٢٠١"}, "id"),
        ({"id": "1", "time": "1" * 10_000}, "time"),
        ({"id": "1", "time": " 2021-12-01T10:00"}, "time"),
        ({"id": "1", "time": "20211201T100000"}, "time"),
    ],
)
def test_lenient_feed_parameters_are_refused_naming_the_field(client, params, field):
    response = client.get("/post/recommendations/", params=params)
    assert_json_refusal(response, 422)
    assert [p["field"] for p in response.json()["fields"]] == [field]


@pytest.mark.parametrize("target", [True, 1.0, "1"])
def test_an_event_target_must_be_the_integer_0_or_1(client, tiny_world, target):
    event = {**like(1, 1, "2021-12-01T10:00:00"), "action": "view", "target": target}
    response = client.post("/feed/events", json=[event])
    assert_json_refusal(response, 422)
    assert response.json()["fields"][0]["field"] == "events[0].target"


def test_head_and_encoded_slashes_do_not_reach_the_feed(client, server, tiny_world):
    user, moment = first_user(tiny_world), last_moment(tiny_world)
    params = {"id": user, "time": moment}

    def logged() -> int:
        return duckdb.sql(f"SELECT count(*) FROM ({query(server.log_dir)})").fetchall()[0][0]

    assert client.get("/post/recommendations/", params=params).status_code == 200
    before = logged()
    for _ in range(5):
        head = client.head("/post/recommendations/", params=params)
        assert_json_refusal(head, 405)
        assert head.headers["allow"] == "GET"
    encoded = client.get("/post%2Frecommendations/", params=params)
    assert "%2F" in assert_json_refusal(encoded, 400)
    assert logged() == before


def test_unknown_routes_and_methods_answer_json(client):
    assert "no such endpoint" in assert_json_refusal(client.get("/nowhere"), 404)
    assert "not allowed" in assert_json_refusal(client.delete("/post/recommendations/"), 405)
