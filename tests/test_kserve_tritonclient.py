"""The real tritonclient HTTP client against the KServe v2 routes on uvicorn."""

from __future__ import annotations

import re

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from kserve_serving import start
from model_repo_factory import rows, trained


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    served = start(tmp_path_factory.mktemp("kserve"), {"m": [1, 2], "solo": [1]})
    yield served
    served.server.stop()


@pytest.fixture
def client(served):
    return triton.InferenceServerClient(served.url)


def onnx_outputs(served, version: int, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(served.root / "m" / str(version) / "model.onnx"))
    return dict(
        zip(["label", "probabilities"], session.run(["label", "probabilities"], {"features": x}))
    )


def features(x: np.ndarray, *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("features", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "feedrank"
    assert {"binary_tensor_data", "model_repository"} <= set(metadata["extensions"])


def test_model_metadata_and_readiness(client):
    metadata = client.get_model_metadata("m")
    assert metadata["versions"] == ["1", "2"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 6]}]
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    assert client.get_model_metadata("m", "1")["name"] == "m"
    assert client.is_model_ready("m") and client.is_model_ready("m", "1")
    assert not client.is_model_ready("m", "3") and not client.is_model_ready("nope")
    with pytest.raises(InferenceServerException, match="'nope' is not loaded") as caught:
        client.get_model_metadata("nope")
    assert caught.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_onnxruntime_on_the_same_input(served, client, binary):
    x = rows(37, seed=4)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")
    ]
    result = client.infer("m", [features(x, binary=binary)], outputs=outputs, request_id="r-1")
    expected = onnx_outputs(served, 2, x)
    response = result.get_response()
    assert response["model_version"] == "2" and response["id"] == "r-1"
    assert np.array_equal(result.as_numpy("probabilities"), expected["probabilities"])
    assert result.as_numpy("probabilities").dtype == np.float32
    assert np.array_equal(result.as_numpy("label"), expected["label"])
    has_binary = any("parameters" in o for o in response["outputs"])
    assert has_binary == binary


def test_client_defaults_binary_everything_and_a_version_is_addressable(served, client):
    x = rows(5, seed=9)
    result = client.infer("m", [features(x, binary=True)], model_version="1")
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(
        result.as_numpy("probabilities")[:, 1], trained(1).predict_proba(x)[:, 1], atol=1e-6
    )
    assert np.array_equal(
        result.as_numpy("probabilities"), onnx_outputs(served, 1, x)["probabilities"]
    )


def test_requested_outputs_only(client):
    result = client.infer(
        "m",
        [features(rows(3), binary=False)],
        outputs=[triton.InferRequestedOutput("probabilities", False)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (triton.InferInput("features", [2, 5], "FP32"), "shape [2, 5] does not match"),
        (triton.InferInput("features", [2, 6], "FP64"), "datatype FP64 does not match"),
        (triton.InferInput("wrong", [2, 6], "FP32"), "unexpected inference input 'wrong'"),
    ],
)
def test_bad_inputs_answer_400_with_the_error(client, tensor, message):
    dtype = np.float64 if tensor.datatype() == "FP64" else np.float32
    tensor.set_data_from_numpy(np.zeros(tensor.shape(), dtype))
    with pytest.raises(InferenceServerException, match=re.escape(message)) as caught:
        client.infer("m", [tensor])
    assert caught.value.status() == "400"


def test_unknown_model_and_output_errors(client):
    x = features(rows(2), binary=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", [x])
    assert caught.value.status() == "404"
    with pytest.raises(InferenceServerException, match="unexpected inference output 'x'"):
        client.infer("m", [x], outputs=[triton.InferRequestedOutput("x")])


def test_metrics_count_triton_style_per_model_and_version(served, client):
    for _ in range(3):
        client.infer("solo", [features(rows(4), binary=True)])
    bad = triton.InferInput("features", [1, 5], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException):
        client.infer("solo", [bad])
    text = httpx_get(served.http + "/metrics")
    assert 'nv_inference_request_success{model="solo",version="1"} 3\n' in text
    assert 'nv_inference_request_failure{model="solo",version="1"} 1\n' in text
    assert 'nv_inference_exec_count{model="solo",version="1"} 3\n' in text
    assert "# TYPE nv_inference_compute_infer_duration_us counter" in text
    assert (
        'feedrank_requests_total{endpoint="infer",group="",model="solo",status="ok",'
        'version="1"} 3.0'
    ) in text
    assert 'feedrank_model_versions_loaded{model="m"} 2.0' in text
    assert (
        'feedrank_request_duration_seconds_count{endpoint="infer",model="solo",version="1"}'
        " 4.0" in text
    )


def httpx_get(url: str) -> str:
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text
