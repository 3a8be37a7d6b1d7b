"""Model control over HTTP: off without a token, bearer auth, name checks, body limits,
and a corrupt version refused through the API while the previous one keeps answering."""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from kserve_serving import TOKEN, start
from model_repo_factory import rows

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(tmp_path):
    served = start(tmp_path / "repo", {"m": [1, 2]}, max_body_bytes=4096)
    yield served
    served.server.stop()


def infer_body(n: int) -> dict:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [n, 6],
                "datatype": "FP32",
                "data": rows(n).ravel().tolist(),
            }
        ]
    }


def test_admin_is_off_without_a_configured_token(tmp_path):
    served = start(tmp_path / "repo", {"m": [1]}, token=None)
    try:
        for path in (
            "/v2/repository/index",
            "/v2/repository/models/m/load",
            "/v2/repository/models/m/unload",
        ):
            response = httpx.post(served.http + path, headers=AUTH)
            assert response.status_code == 403 and "disabled" in response.json()["error"]
        assert served.repository.versions("m") == [1]
    finally:
        served.server.stop()


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_admin_refuses_a_missing_or_wrong_token(served, headers):
    client = triton.InferenceServerClient(served.url)
    for call in (
        lambda: client.get_model_repository_index(headers=headers),
        lambda: client.unload_model("m", headers=headers),
    ):
        with pytest.raises(InferenceServerException, match="Bearer") as caught:
            call()
        assert caught.value.status() == "401"
    assert served.repository.versions("m") == [1, 2]


@pytest.mark.parametrize("name", ["..%2Fx", "%2E%2E", "a%2Fb", "-x", "..%2F..%2Fetc"])
def test_names_with_path_tricks_are_rejected(served, name):
    # httpx would resolve a literal "../x" itself; the tritonclient test below sends it as is
    response = httpx.post(f"{served.http}/v2/repository/models/{name}/load", headers=AUTH)
    assert response.status_code == 400 and "invalid model name" in response.json()["error"]


def test_tritonclient_load_of_dotdot_is_rejected(served):
    client = triton.InferenceServerClient(served.url)
    with pytest.raises(InferenceServerException, match="invalid model name") as caught:
        client.load_model("../x", headers=AUTH)
    assert caught.value.status() == "400"


def test_index_load_unload_with_the_token(served):
    client = triton.InferenceServerClient(served.url)
    index = client.get_model_repository_index(headers=AUTH)
    assert [(e["name"], e["version"], e["state"]) for e in index] == [
        ("m", "1", "READY"),
        ("m", "2", "READY"),
    ]
    client.unload_model("m", headers=AUTH)
    # as in Triton, a model unloaded on purpose does not make the server unready
    assert not client.is_model_ready("m") and client.is_server_ready()
    ready_only = httpx.post(
        served.http + "/v2/repository/index", json={"ready": True}, headers=AUTH
    )
    assert ready_only.json() == []
    client.load_model("m", headers=AUTH)
    assert client.is_model_ready("m", "2")
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("absent", headers=AUTH)
    assert caught.value.status() == "404"


def test_corrupt_new_version_refused_through_the_api_previous_keeps_serving(served, caplog):
    client = triton.InferenceServerClient(served.url)
    version = served.root / "m" / "3"
    version.mkdir()
    (version / "model.onnx").write_bytes(b"not an onnx model at all")
    with caplog.at_level(logging.ERROR, logger="feedrank.server.repository"):
        with pytest.raises(InferenceServerException, match="m version 3") as caught:
            client.load_model("m", headers=AUTH)
    assert caught.value.status() == "400"
    assert any("m version 3 refused" in r.getMessage() for r in caplog.records)
    entries = {e["version"]: e for e in client.get_model_repository_index(headers=AUTH)}
    assert entries["3"]["state"] == "UNAVAILABLE" and "model.onnx" in entries["3"]["reason"]
    assert entries["2"]["state"] == "READY"
    tensor = triton.InferInput("features", [3, 6], "FP32")
    tensor.set_data_from_numpy(rows(3))
    assert client.infer("m", [tensor]).get_response()["model_version"] == "2"


def test_request_bodies_over_the_limit_get_413(served):
    url = served.http + "/v2/models/m/infer"
    assert httpx.post(url, json=infer_body(4)).status_code == 200
    too_big = httpx.post(url, json=infer_body(200))
    assert too_big.status_code == 413 and "4096 bytes" in too_big.json()["error"]
    # a small gzip body that inflates past the limit is measured after decoding
    zeros = {
        "inputs": [
            {"name": "features", "shape": [400, 6], "datatype": "FP32", "data": [0.0] * 2400}
        ]
    }
    bomb = gzip.compress(json.dumps(zeros).encode())
    assert len(bomb) < 4096
    inflated = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert inflated.status_code == 413
    small = gzip.compress(json.dumps(infer_body(2)).encode())
    assert httpx.post(url, content=small, headers={"Content-Encoding": "gzip"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", {}, "failed to parse"),
        (b'{"inputs": 3}', {}, "'inputs' list"),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, "does not fit"),
        (
            b'{"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", '
            b'"parameters": {"binary_data_size": 20}}]}',
            {},
            "binary_data_size 20 does not fit",
        ),
        (
            b'{"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", '
            b'"data": [1, 2, "x", 4, 5, 6]}]}',
            {},
            "data is not a float32 tensor",
        ),
        (
            b'{"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", '
            b'"data": [1, 2]}]}',
            {},
            "2 values do not fill shape [1, 6]",
        ),
    ],
)
def test_malformed_infer_requests_get_400_naming_the_problem(served, body, headers, message):
    response = httpx.post(served.http + "/v2/models/m/infer", content=body, headers=headers)
    assert response.status_code == 400 and message in response.json()["error"]


def test_binary_request_by_hand_matches_json(served):
    x = rows(3, seed=11)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [3, 6],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities"}],
        }
    ).encode()
    response = httpx.post(
        served.http + "/v2/models/m/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    data = response.json()["outputs"][0]["data"]
    expected = served.repository.get("m").backend.infer({"features": x})["probabilities"]
    assert np.array_equal(np.array(data, np.float32).reshape(3, 2), expected)


def test_unknown_v2_paths_answer_json_404(served):
    response = httpx.get(served.http + "/v2/nothing/here")
    assert response.status_code == 404 and "no such endpoint" in response.json()["error"]
