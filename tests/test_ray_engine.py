"""`feedrank serve --engine ray` on a real local Ray cluster (`ray start --head` here), 2
replicas behind Ray's proxy: both answer, a like posted through one is excluded by the other,
errors and answers keep the feed's contract exactly (compared with plain uvicorn), a router edit
reaches both, a rollout under load fails no request, and stopping loses no exposure."""

from __future__ import annotations

import copy
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

from feedrank.ab.server_process import free_port
from feedrank.errors import FeedrankError
from feedrank.ray_engine import metrics_ports
from feedrank.server.metrics import Metrics
from feedrank.settings import Settings

from feed_serving import (
    ServerProcess,
    answers,
    built_repository,
    copy_repository,
    exposure_records,
    first_user,
    last_moment,
    later,
    like,
)

RAY = Path(sys.executable).parent / "ray"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    port = free_port()
    subprocess.run(
        [str(RAY), "start", "--head", "--port", str(port), "--num-cpus", "2"]
        + ["--include-dashboard", "false", "--disable-usage-stats"],
        env=ENV,
        check=True,
        capture_output=True,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=ENV, capture_output=True)


class RayApp:
    """`feedrank serve --engine ray` joined to the cluster; ready when the proxy answers."""

    def __init__(self, world: Path, repository: Path, log: Path, address: str) -> None:
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "feedrank", "serve", "--engine", "ray"]
        command += ["--replicas", "2", "--ray-address", address, "--port", str(self.port)]
        command += ["--world", str(world), "--repository", str(repository), "--log", str(log)]
        env = ENV | {
            "FEEDRANK_SERVER__POLL_INTERVAL_S": "0.2",
            "FEEDRANK_SERVER__REPOSITORY_POLL": "true",
        }
        self.output = log.parent / "ray-app.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out, env=env)

        def alive() -> None:
            assert self.process.poll() is None, self.output.read_text()[-3000:]

        assert answers(f"{self.url}/router", 240, alive), self.output.read_text()[-3000:]

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT
        self.process.wait(timeout=120)


@pytest.fixture(scope="module")
def app(cluster, tiny_world, tmp_path_factory) -> Iterator[RayApp]:
    folder = tmp_path_factory.mktemp("ray")
    repository = copy_repository(built_repository(tiny_world), folder)
    running = RayApp(tiny_world, repository, folder / "log", cluster)
    yield running
    if running.process.poll() is None:
        running.stop()


ANSWERED: list[dict] = []  # every feed answer of this module, counted against the log at the end


def get_feed(url: str, user: int, at: str, limit: int = 5) -> httpx.Response:
    response = httpx.get(
        f"{url}/post/recommendations/", params={"id": user, "time": at, "limit": limit}
    )
    if response.status_code == 200:
        ANSWERED.append(response.json())
    return response


def test_both_replicas_answer_and_share_likes(app, tiny_world):
    user, at = first_user(tiny_world), last_moment(tiny_world)
    then = later(at, 60)
    replicas = {get_feed(app.url, user, then).headers["x-feedrank-replica"] for _ in range(30)}
    assert len(replicas) == 2, replicas
    top = get_feed(app.url, user, then).json()["recommendations"][0]["id"]
    assert httpx.post(f"{app.url}/feed/events", json=[like(user, top, at)]).status_code == 200
    time.sleep(1.0)
    after = set()
    for _ in range(30):
        response = get_feed(app.url, user, then)
        assert top not in [p["id"] for p in response.json()["recommendations"]]
        after.add(response.headers["x-feedrank-replica"])
    assert after == replicas


def test_each_replica_serves_its_own_metrics(app):
    replicas = set()
    for offset in (1, 2):  # server.port + 1 … + replicas, one each
        scrape = httpx.get(f"http://127.0.0.1:{app.port + offset}/metrics")
        assert scrape.status_code == 200
        assert 'feedrank_requests_total{endpoint="feed"' in scrape.text
        replicas.add(scrape.headers["x-feedrank-replica"])
    assert len(replicas) == 2


def test_the_proxy_keeps_the_feeds_contract(app, tiny_world, tmp_path):
    user, at = first_user(tiny_world), last_moment(tiny_world)
    asks = [
        ("GET", "/post/recommendations/", {"id": "x"}),
        ("GET", "/post/recommendations/", {"id": user, "time": "soon", "limit": "0"}),
        ("GET", "/post/recommendations/", {"id": user, "what": "1"}),
        ("POST", "/post/recommendations/", {"id": user}),
        ("GET", "/no/such/route", {}),
        ("GET", "/v2/models/nope", {}),
        ("GET", "/explain/feed", {"id": 99999999, "time": at}),
        ("GET", "/post/recommendations/", {"id": 99999999, "time": at, "limit": 2}),
    ]
    plain = ServerProcess(tiny_world, built_repository(tiny_world), tmp_path / "log")
    try:
        for method, path, params in asks:
            ray_answer = httpx.request(method, app.url + path, params=params)
            uvicorn_answer = httpx.request(method, plain.url + path, params=params)
            assert ray_answer.status_code == uvicorn_answer.status_code, path
            assert ray_answer.headers["content-type"] == uvicorn_answer.headers["content-type"]
            body, expected = ray_answer.json(), uvicorn_answer.json()
            for volatile in ("request_id",):
                body.pop(volatile, None), expected.pop(volatile, None)
            assert body == expected, (path, params)
            if ray_answer.status_code == 200 and path.startswith("/post"):
                ANSWERED.append(ray_answer.json())
        # and the exposure record of the one answer logged (a fallback), field for field
        assert logged(app.log, 99999999) == logged(plain.log_dir, 99999999)
        assert len(logged(plain.log_dir, 99999999)) == 1
    finally:
        plain.stop()


def logged(log: Path, user: int) -> list[dict]:
    """A user's exposure records, without what differs between any two answers."""
    volatile = ("request_id", "server_time", "latency_ms")
    records = exposure_records(log)
    return [
        {k: v for k, v in r.items() if k not in volatile} for r in records if r["user_id"] == user
    ]


def edit_router(repository: Path, text: str) -> None:
    (repository / "router.toml").write_text(text)


def test_a_router_edit_and_a_rollout_under_load_fail_no_request(app, tiny_world):
    repository = Path(httpx.get(f"{app.url}/router").json()["path"]).parent
    user, at = first_user(tiny_world), later(last_moment(tiny_world), 60)
    failures, stop = [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            response = get_feed(app.url, user, at)
            if response.status_code != 200:
                failures.append((response.status_code, response.text[:200]))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        # a new version of test, then every bucket routed to it
        shutil.copytree(repository / "test" / "1", repository / "test" / "2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(f"{app.url}/v2/models/test/versions/2/ready").status_code == 200:
                if httpx.get(f"{app.url}/v2/models/test/versions/2/ready").status_code == 200:
                    break
            time.sleep(0.3)
        edit_router(
            repository,
            'salt = "feedrank"\n[[groups]]\nname = "test"\nbuckets = [0, 99]\n'
            'model = "test"\nversion = 2\n',
        )
        seen: dict[str, set] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 2:
            response = get_feed(app.url, user, at)
            if response.json().get("version") == 2:
                seen.setdefault(response.headers["x-feedrank-replica"], set()).add(2)
        assert len(seen) == 2, "both replicas must follow the router edit"
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == []


def test_stopping_loses_no_exposure(app):
    app.stop()
    assert app.process.returncode == 0, app.output.read_text()[-2000:]
    assert ANSWERED and len(exposure_records(app.log)) == len(ANSWERED)


DEPLOY = Path(__file__).parent.parent / "deploy" / "ray"


def test_the_serve_config_is_valid_and_builds_the_application(tiny_world):
    config = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    ServeDeploySchema.model_validate(config)
    (application,) = config["applications"]
    module, name = application["import_path"].split(":")
    builder = getattr(importlib.import_module(module), name)
    args = application["args"] | {"world": str(tiny_world), "log_dir": "/nonexistent"}
    assert isinstance(builder(args), serve.Application)
    with pytest.raises(FeedrankError, match="server.port"):
        builder(args | {"server": {"port": "eighty"}})


def test_the_rayservice_manifest_carries_the_serve_config_and_fits_the_crd():
    manifest = yaml.safe_load((DEPLOY / "rayservice.yaml").read_text())
    schema = json.loads((DEPLOY / "rayservice.schema.json").read_text())
    assert manifest["spec"]["serveConfigV2"] == (DEPLOY / "serve_config.yaml").read_text()
    jsonschema.validate(manifest, schema)
    broken = copy.deepcopy(manifest)
    del broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplicas"]
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        jsonschema.validate(broken, schema)


def _two_free_ports() -> int:
    """A port that is free with the next one (another process may hold a free port's neighbour)."""
    while True:
        base = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
                return base
            except OSError:
                continue


def test_replicas_given_one_rank_still_find_a_metrics_port_each() -> None:
    settings = Settings()
    first = settings.server.port + 1
    assert metrics_ports(settings, 1, 3) == [first + 1, first + 2, first]
    assert metrics_ports(settings, 4, 2) == [first + 4, first, first + 1, first + 2, first + 3]
    base = _two_free_ports()
    ports = [base, base + 1]
    holder = socket.socket()
    holder.bind(("127.0.0.1", base))  # the other replica of the same rank
    holder.listen()
    try:
        assert Metrics().listen_on_any("127.0.0.1", ports, "r") == base + 1
        assert (
            httpx.get(f"http://127.0.0.1:{base + 1}/metrics").headers["x-feedrank-replica"] == "r"
        )
        assert Metrics().listen_on_any("127.0.0.1", ports, "s") is None
    finally:
        holder.close()
