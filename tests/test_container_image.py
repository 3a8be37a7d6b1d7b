"""The serving image (container/Containerfile), built by scripts/image.sh with podman and run
with a world and a model repository mounted read-only: it answers a feed request and /metrics,
passes its health check, runs as a non-root user, logs exposures to the mounted folder, and
holds no PyTorch."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from feedrank.ab.server_process import free_port

from feed_serving import answers, built_repository, exposure_records, first_user, last_moment

ROOT = Path(__file__).parent.parent
STATE = ROOT / ".cache" / "podman"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(STATE / "storage.conf"),
    }
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=env, check=check)


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run(
        [str(ROOT / "scripts" / "image.sh"), "localhost/feedrank:test"],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def container(image, tiny_world, tmp_path) -> Iterator[tuple[str, str, Path]]:
    log = tmp_path / "log"
    log.mkdir()
    log.chmod(0o777)  # the image's user is not this one
    name, port = f"feedrank-test-{os.getpid()}", free_port()
    podman("rm", "-f", name, check=False)
    podman(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000",
        "-v", f"{tiny_world}:/data/world:ro",
        "-v", f"{built_repository(tiny_world)}:/data/repository:ro",
        "-v", f"{log}:/data/log",
        image,
    )  # fmt: skip
    try:
        yield name, f"http://127.0.0.1:{port}", log
    finally:
        podman("rm", "-f", "-t", "10", name, check=False)


def wait_ready(url: str, name: str) -> None:
    if not answers(f"{url}/v2/health/ready", timeout_s=180):
        pytest.fail(f"the container never got ready:\n{podman('logs', name, check=False).stderr}")


def test_the_serving_image_answers_feeds_and_metrics(container, tiny_world):
    name, url, log = container
    wait_ready(url, name)
    user, at = first_user(tiny_world), last_moment(tiny_world)
    answer = httpx.get(f"{url}/post/recommendations/", params={"id": user, "time": at, "limit": 3})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["recommendations"]) == 3
    assert answer.headers["x-feedrank-replica"].endswith(":1")  # the container's own process
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and 'feedrank_requests_total{endpoint="feed"' in metrics.text
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    no_torch = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
    assert podman("exec", name, "python3", "-c", no_torch, check=False).returncode == 0
    assert [r["user_id"] for r in exposure_records(log)] == [user]
