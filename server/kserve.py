"""KServe v2 (Open Inference Protocol) over HTTP, as Triton serves it, plus /metrics.

Routes: `GET /v2/health/live|ready`, `GET /v2`, `GET /v2/models/{m}[/versions/{v}][/ready]`,
`POST /v2/models/{m}[/versions/{v}]/infer` (JSON tensors and Triton's binary tensor extension:
`Inference-Header-Content-Length` gives the JSON header's size, raw little-endian tensors
follow in input order, each sized by `parameters.binary_data_size`), Triton's repository
extension `POST /v2/repository/index` and `/v2/repository/models/{m}/load|unload` (admin), and
`GET /metrics`. Errors are `{"error": "..."}` with Triton's status codes.

For the app factory (server/app.py):

    metrics = Metrics(repository)
    routes += kserve_routes(repository, settings, metrics)   # after the app's own routes
    FeedService(..., metrics=metrics)                          # feed metrics: observe_feed
    # with settings.server.repository_poll: repository.start_polling(poll_interval_s) in the
    # lifespan, repository.stop_polling() at shutdown
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from feedrank.errors import FeedrankError
from feedrank.server.admin import (
    check_admin,
    check_name,
    decimal,
    json_object,
    parse_json,
    read_body,
)
from feedrank.server.backends.base import DATATYPES, TensorSpec
from feedrank.server.errors import ApiError, error_response
from feedrank.server.metrics import CONTENT_TYPE, Metrics
from feedrank.server.repository import LoadedVersion, ModelNotFound, ModelRepository
from feedrank.server.router import Group, Router
from feedrank.settings import Settings

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "model_repository"]
_NAMES_OF = {dtype: name for name, dtype in DATATYPES.items()}


# -- tensors ------------------------------------------------------------------------------


def split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """The JSON request header and the binary section after it."""
    size = len(body)
    if header_length is not None:
        given = decimal(header_length)
        if given is None or given > len(body):
            raise ApiError(
                400,
                f"{HEADER_LENGTH} '{header_length[:40]}' does not fit the {len(body)}-byte body",
            )
        size = given
    request = parse_json(body[:size], "inference request")
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ApiError(400, "inference request needs an 'inputs' list")
    return request, memoryview(body)[size:]


def decode_inputs(
    request: dict, binary: memoryview, specs: list[TensorSpec], model: str
) -> dict[str, np.ndarray]:
    by_name = {spec.name: spec for spec in specs}
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for entry in request["inputs"]:
        if not isinstance(entry, dict):
            raise ApiError(400, "each input must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or name not in by_name:
            raise ApiError(400, f"unexpected inference input {name!r} for model '{model}'")
        spec = by_name[name]
        if name in tensors:
            raise ApiError(400, f"input '{name}' given more than once")
        shape = entry.get("shape")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise ApiError(400, f"input '{name}': shape must be a list of non-negative integers")
        if entry.get("datatype") != spec.datatype:
            raise ApiError(
                400,
                f"input '{name}': datatype {entry.get('datatype')} does not "
                f"match the model's {spec.datatype}",
            )
        if not spec.accepts(tuple(shape)):
            raise ApiError(
                400, f"input '{name}': shape {shape} does not match the model's {list(spec.shape)}"
            )
        dtype = DATATYPES[spec.datatype]
        parameters = json_object(entry.get("parameters"), f"input '{name}': parameters")
        if any(key.startswith("shared_memory") for key in parameters):
            raise ApiError(400, "shared-memory tensors are not supported over this server")
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size != int(np.prod(shape)) * dtype.itemsize:
                raise ApiError(
                    400,
                    f"input '{name}': binary_data_size {size} does not fit "
                    f"shape {shape} of {spec.datatype}",
                )
            if offset + size > len(binary):
                raise ApiError(400, f"input '{name}': binary data ends before {size} bytes")
            raw = np.frombuffer(binary[offset : offset + size], dtype.newbyteorder("<"))
            offset += size
        else:
            raw = _json_data(entry.get("data"), dtype, name)
        if raw.size != int(np.prod(shape)):
            raise ApiError(400, f"input '{name}': {raw.size} values do not fill shape {shape}")
        tensors[name] = raw.astype(dtype, copy=False).reshape(shape)
    missing = by_name.keys() - tensors.keys()
    if missing:
        raise ApiError(
            400, f"expected inputs {sorted(by_name)} for model '{model}', missing {sorted(missing)}"
        )
    return tensors


def _json_data(data: Any, dtype: np.dtype, name: str) -> np.ndarray:
    if data is None:
        raise ApiError(400, f"input '{name}': neither 'data' nor binary_data_size given")
    try:
        return np.asarray(data, dtype=dtype).reshape(-1)
    except (TypeError, ValueError) as problem:
        raise ApiError(400, f"input '{name}': data is not a {dtype} tensor: {problem}") from None


def requested_outputs(request: dict, specs: list[TensorSpec], model: str) -> dict[str, bool]:
    """Output name -> binary?; all outputs when the request names none."""
    parameters = json_object(request.get("parameters"), "parameters")
    default_binary = bool(parameters.get("binary_data_output", False))
    outputs = request.get("outputs")
    if not outputs:
        return {spec.name: default_binary for spec in specs}
    if not isinstance(outputs, list):
        raise ApiError(400, "outputs must be a list of objects")
    known = {spec.name for spec in specs}
    wanted = {}
    for entry in outputs:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name not in known:
            raise ApiError(400, f"unexpected inference output {name!r} for model '{model}'")
        options = json_object(entry.get("parameters"), f"output '{name}': parameters")
        wanted[name] = bool(options.get("binary_data", default_binary))
    return wanted


def encode_response(
    request: dict, loaded: LoadedVersion, outputs: dict[str, np.ndarray], wanted: dict[str, bool]
) -> Response:
    entries, blobs = [], []
    for name, binary in wanted.items():
        value = np.ascontiguousarray(outputs[name])
        datatype = _NAMES_OF.get(value.dtype)
        if datatype is None:
            raise ApiError(500, f"output '{name}' has unsupported dtype {value.dtype}")
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(value.shape)}
        if binary:
            blob = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = value.reshape(-1).tolist()
        entries.append(entry)
    body = {"model_name": loaded.model, "model_version": str(loaded.version), "outputs": entries}
    if "id" in request:
        body["id"] = request["id"]
    header = json.dumps(body).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(blobs),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


# -- routes -------------------------------------------------------------------------------


class KServe:
    def __init__(
        self,
        repository: ModelRepository,
        settings: Settings,
        metrics: Metrics,
        router: Router | None = None,
    ) -> None:
        self.repository, self.settings, self.metrics = repository, settings, metrics
        self.router = router

    def _routed(self) -> list[Group]:
        return list(self.router.config.groups) if self.router is not None else []

    def routes(self) -> list[Route]:
        model = "/v2/models/{name}"
        versioned = model + "/versions/{version}"
        admin = "/v2/repository/models/{name:path}"
        return [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route("/v2", self.server_metadata, methods=["GET"]),
            *[
                Route(base + tail, handler, methods=[method])
                for base in (versioned, model)
                for tail, handler, method in (
                    ("", self.model_metadata, "GET"),
                    ("/ready", self.model_ready, "GET"),
                    ("/infer", self.infer, "POST"),
                )
            ],
            Route("/v2/repository/index", self.index, methods=["POST"]),
            Route(admin + "/load", self.load, methods=["POST"]),
            Route(admin + "/unload", self.unload, methods=["POST"]),
            Route("/v2/{rest:path}", self.not_found, methods=["GET", "POST"]),
            Route("/metrics", self.render_metrics, methods=["GET"]),
        ]

    async def live(self, request: Request) -> Response:
        return Response(status_code=200)

    async def ready(self, request: Request) -> Response:
        """Ready when every model has a version serving and every routed version is loaded."""
        routed = all(self.repository.has(g.model, g.version) for g in self._routed())
        return Response(status_code=200 if routed and self.repository.ready() else 400)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": "feedrank", "version": package_version("feedrank"), "extensions": EXTENSIONS}
        )

    async def not_found(self, request: Request) -> Response:
        return error_response(404, f"no such endpoint: {request.method} {request.url.path}")

    async def render_metrics(self, request: Request) -> Response:
        return Response(self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def _resolve(self, request: Request) -> LoadedVersion:
        name, text = request.path_params["name"], request.path_params.get("version")
        version = None if text is None else decimal(text)
        if text is not None and (version is None or text.startswith("0")):
            raise ApiError(400, f"invalid model version {text[:40]!r}: a positive integer")
        try:
            return self.repository.get(name, version)
        except ModelNotFound as problem:
            raise ApiError(404, str(problem)) from None

    async def model_metadata(self, request: Request) -> Response:
        try:
            loaded = self._resolve(request)
        except ApiError as problem:
            return problem.response()
        backend = loaded.backend
        return JSONResponse(
            {
                "name": loaded.model,
                "versions": [str(v) for v in self.repository.versions(loaded.model)],
                "platform": backend.platform,
                "inputs": [s.as_dict() for s in backend.inputs],
                "outputs": [s.as_dict() for s in backend.outputs],
                # the backend that ranks the feed with this version (config.pbtxt's `ranker`)
                "parameters": {"ranker": backend.name},
            }
        )

    async def model_ready(self, request: Request) -> Response:
        try:
            self._resolve(request)
        except ApiError:
            return Response(status_code=400)
        return Response(status_code=200)

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            loaded = self._resolve(request)
        except ApiError as problem:
            return problem.response()
        try:
            response = await self._infer(request, loaded, started)
        except ApiError as problem:
            self.metrics.observe_infer(
                loaded.model, loaded.version, ok=False, total_s=time.perf_counter() - started
            )
            return problem.response()
        return response

    async def _infer(self, request: Request, loaded: LoadedVersion, started: float) -> Response:
        body = await read_body(request, self.settings.server.max_body_bytes)
        payload, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        backend = loaded.backend
        inputs = decode_inputs(payload, binary, backend.inputs, loaded.model)
        wanted = requested_outputs(payload, backend.outputs, loaded.model)
        submitted = time.perf_counter()

        def run() -> tuple[float, dict[str, np.ndarray], float]:
            begun = time.perf_counter()
            return begun, backend.infer(inputs), time.perf_counter()

        try:
            begun, outputs, finished = await asyncio.get_running_loop().run_in_executor(None, run)
        except Exception as problem:  # the backend refused these values
            raise ApiError(500, f"inference failed: {problem}") from None
        response = encode_response(payload, loaded, outputs, wanted)
        self.metrics.observe_infer(
            loaded.model,
            loaded.version,
            ok=True,
            queue_s=begun - submitted,
            compute_s=finished - begun,
            total_s=time.perf_counter() - started,
        )
        return response

    # -- repository extension (admin) --

    async def _admin(self, request: Request) -> dict:
        check_admin(request, self.settings.server.admin_token)
        payload = parse_json(
            await read_body(request, self.settings.server.max_body_bytes), "request"
        )
        if not isinstance(payload, dict):
            raise ApiError(400, "request body must be a JSON object")
        return payload

    async def index(self, request: Request) -> Response:
        try:
            payload = await self._admin(request)
        except ApiError as problem:
            return problem.response()
        entries = self.repository.index()
        if payload.get("ready"):
            entries = [e for e in entries if e["state"] == "READY"]
        return JSONResponse(entries)

    async def load(self, request: Request) -> Response:
        return await self._control(request, self.repository.load)

    async def unload(self, request: Request) -> Response:
        return await self._control(request, self.repository.unload, self._check_unrouted)

    def _check_unrouted(self, name: str, parameters: dict) -> None:
        """Unloading what the router sends a group to would fail that group's feeds."""
        groups = [g.name for g in self._routed() if g.model == name]
        if groups and parameters.get("force") is not True:
            raise ApiError(
                409,
                f"model '{name}' serves group(s) {', '.join(groups)} in "
                "router.toml: route them elsewhere first, or unload with "
                '{"parameters": {"force": true}}',
            )

    async def _control(self, request: Request, action: Any, check: Any = None) -> Response:
        """`action(name)` off the event loop, after `check(name, parameters)` when given."""
        try:
            payload = await self._admin(request)
            name = check_name(request.path_params["name"])
            parameters = json_object(payload.get("parameters"), "parameters")
            if "config" in parameters or any(k.startswith("file:") for k in parameters):
                raise ApiError(501, "loading with a config or file override is not supported")
            if check is not None:
                check(name, parameters)
            await run_in_threadpool(action, name)
        except ApiError as problem:
            return problem.response()
        except ModelNotFound as problem:
            return error_response(404, str(problem))
        except FeedrankError as problem:  # InvalidName, ModelLoadError (refused versions)
            return error_response(400, str(problem))
        return Response(status_code=200)


def kserve_routes(
    repository: ModelRepository, settings: Settings, metrics: Metrics, router: Router | None = None
) -> list[Route]:
    return KServe(repository, settings, metrics, router).routes()
