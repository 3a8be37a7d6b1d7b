"""Router changes on a live server: a new split and a new model for a group take effect without a
restart while concurrent requests keep arriving, none fails; an invalid edit changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from feedrank.server.router import bucket

from feed_serving import ServerProcess, built_repository, copy_repository

ROLLOUT = """salt = "feedrank"
[[groups]]
name = "control"
buckets = [0, 19]
model = "control"
version = 1
[[groups]]
name = "test"
buckets = [20, 99]
model = "control"   # the test group now served by the control model
version = 1
"""
OVERLAPPING = ROLLOUT.replace("buckets = [20, 99]", "buckets = [10, 99]")


def edit(path: Path, text: str) -> None:
    """Replace the file the way careful editors do: write aside, then rename over it."""
    aside = path.with_suffix(".tmp")
    aside.write_text(text)
    os.replace(aside, path)


async def wait_for(client: httpx.AsyncClient, check, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check((await client.get("/router")).json()):
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError("the server did not adopt the router change in time")


async def load(url: str, stop: asyncio.Event, answers: list, failures: list, seed: int) -> None:
    user_id = 200 + seed
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        while not stop.is_set():
            user_id = 200 + (user_id * 7919 + seed) % 600
            sent = time.monotonic()
            try:
                response = await client.get(
                    "/post/recommendations/", params={"id": user_id, "time": "2021-10-20 12:00"}
                )
            except httpx.HTTPError as error:
                failures.append(repr(error))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text}")
                continue
            body = response.json()
            # a user the world lacks gets the fallback ("popular"), still in its router group
            model = None if body["fallback"] else body["model"]
            answers.append((sent, time.monotonic(), user_id, body["exp_group"], model))


async def scenario(server: ServerProcess, router_file: Path) -> tuple[list, list, float, float]:
    answers: list = []
    failures: list = []
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(load(server.url, stop, answers, failures, seed)) for seed in range(6)
    ]

    async def answered(more: int) -> None:
        target = len(answers) + more
        while len(answers) < target and not failures:
            assert not any(w.done() for w in workers), [w.exception() for w in workers if w.done()]
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        await answered(50)
        changed_at = time.monotonic()
        edit(router_file, ROLLOUT)
        adopted_at = await wait_for(client, lambda s: s["groups"][0]["buckets"] == [0, 19])
        await answered(50)
        edit(router_file, OVERLAPPING)
        await wait_for(client, lambda s: s["last_error"] is not None)
        await answered(50)
    stop.set()
    await asyncio.gather(*workers)
    return answers, failures, changed_at, adopted_at


def test_router_change_under_load_fails_no_request(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    server = ServerProcess(tiny_world, repository, tmp_path / "log")
    try:
        answers, failures, changed_at, adopted_at = asyncio.run(
            scenario(server, repository / "router.toml")
        )
        state = httpx.get(f"{server.url}/router").json()
    finally:
        server.stop()
    assert failures == []
    before = [a for a in answers if a[1] < changed_at]
    after = [a for a in answers if a[0] > adopted_at]
    assert len(before) > 20 and len(after) > 20
    scored = [a for a in answers if a[4] is not None]
    assert len(scored) > len(answers) / 2
    for _, _, user_id, group, model in before:
        assert group == ("control" if bucket(user_id, "feedrank") <= 49 else "test")
        assert model in (group, None)
    for _, _, user_id, group, model in after:  # the overlapping edit was refused: rollout stays
        assert group == ("control" if bucket(user_id, "feedrank") <= 19 else "test")
        assert model in ("control", None)
    assert "bucket 10 is in both 'control' and 'test'" in state["last_error"]
    assert state["groups"][1] == {
        "name": "test",
        "buckets": [20, 99],
        "share": 0.8,
        "model": "control",
        "version": 1,
    }
    assert "router config refused" in server.logs()


def test_server_refuses_to_start_with_an_invalid_router(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    edit(repository / "router.toml", OVERLAPPING)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedrank",
            "serve",
            "--world",
            str(tiny_world),
            "--repository",
            str(repository),
            "--log",
            str(tmp_path / "log"),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "bucket 10 is in both 'control' and 'test'" in run.stderr
    assert "Traceback" not in run.stderr


def test_unloading_a_routed_model_is_refused_unless_forced_then_503_and_unready(
    tiny_world, tmp_path
):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    server = ServerProcess(
        tiny_world, repository, tmp_path / "log", env={"FEEDRANK_SERVER__ADMIN_TOKEN": "secret"}
    )
    admin = {"Authorization": "Bearer secret"}
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            refused = client.post("/v2/repository/models/test/unload", json={}, headers=admin)
            assert refused.status_code == 409 and "group(s) test" in refused.json()["error"]
            assert client.get("/v2/health/ready").status_code == 200
            unload = client.post(
                "/v2/repository/models/test/unload",
                json={"parameters": {"force": True}},
                headers=admin,
            )
            assert unload.status_code == 200, unload.text
            # the router still sends a group to it: the server is not ready
            assert client.get("/v2/health/ready").status_code == 400
            users = [u for u in range(200, 260) if bucket(u, "feedrank") >= 50]
            answers = [client.get("/post/recommendations/", params={"id": u}) for u in users]
            fallback = client.get("/post/recommendations/", params={"id": 10**12})
    finally:
        server.stop()
    scored = [a for a in answers if a.status_code == 503]
    assert scored and all("group 'test'" in a.json()["error"] for a in scored)
    assert {a.status_code for a in answers} <= {200, 503}  # 200: users the world lacks
    assert fallback.status_code == 200 and fallback.json()["fallback"] is True
