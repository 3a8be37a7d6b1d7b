"""Rolling out a new model version on a live `feedrank serve`, as an engineer would: drop the
version into the repository, load it through the KServe repository API, point the router at it,
then drop the old version, all under a steady stream of feed requests. No request fails, and the
exposure log shows the control group switching version once."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from feedrank.model_config import CONFIG_FILE, format_config, read_config
from feedrank.server.router import bucket

from feed_serving import ServerProcess, built_repository, copy_repository, exposure_records

TOKEN = "rollout-token"
CLIENTS = 4


def control_users(world: Path, n: int = 40) -> list[int]:
    ids = pq.read_table(world / "user_data.parquet", columns=["user_id"])["user_id"].to_pylist()
    return [u for u in ids if bucket(u, "feedrank") <= 49][:n]


def replace_file(path: Path, text: str) -> None:
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(text)
    os.replace(aside, path)


def stream(
    url: str, users: list[int], stop: threading.Event, answers: list, failures: list
) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        i = 0
        while not stop.is_set():
            i += 1
            user = users[i % len(users)]
            try:
                response = client.get(
                    "/post/recommendations/", params={"id": user, "time": "2021-10-20 12:00"}
                )
            except httpx.HTTPError as error:
                failures.append(repr(error))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text}")
                continue
            answers.append(response.json())


class Rollout:
    def __init__(self, server: ServerProcess, repository: Path) -> None:
        self.server, self.repository = server, repository
        self.admin = httpx.Client(
            base_url=server.url, timeout=60.0, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def load(self, model: str) -> None:
        response = self.admin.post(f"/v2/repository/models/{model}/load")
        assert response.status_code == 200, response.text

    def publish_copy(self, model: str, source: int, target: int) -> None:
        scratch = self.repository / model / f".publishing-{target}"
        shutil.copytree(self.repository / model / str(source), scratch)
        os.rename(scratch, self.repository / model / str(target))

    def route_control_to(self, version: int) -> None:
        router = self.repository / "router.toml"
        text = router.read_text()
        head, _, tail = text.partition('model = "control"\nversion = 1')
        replace_file(router, f'{head}model = "control"\nversion = {version}{tail}')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            groups = self.admin.get("/router").json()["groups"]
            if any(g["name"] == "control" and g["version"] == version for g in groups):
                return
            time.sleep(0.05)
        raise AssertionError("the router did not adopt the new version")

    def keep_latest(self, model: str, count: int) -> None:
        config = read_config(self.repository / model)
        config.version_policy.latest.num_versions = count
        replace_file(self.repository / model / CONFIG_FILE, format_config(config))


def wait_for(answers: list, failures: list, more: int) -> None:
    target = len(answers) + more
    while len(answers) < target and not failures:
        time.sleep(0.02)


def test_rollout_of_a_new_version_under_load(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    server = ServerProcess(
        tiny_world, repository, tmp_path / "log", env={"FEEDRANK_SERVER__ADMIN_TOKEN": TOKEN}
    )
    users = control_users(tiny_world)
    stop, answers, failures = threading.Event(), [], []
    threads = [
        threading.Thread(
            target=stream, args=(server.url, users[k::CLIENTS], stop, answers, failures)
        )
        for k in range(CLIENTS)
    ]
    rollout = Rollout(server, repository)
    try:
        for thread in threads:
            thread.start()
        wait_for(answers, failures, 40)
        rollout.publish_copy("control", 1, 2)
        rollout.load("control")  # latest 2: versions 1 and 2 both serve
        wait_for(answers, failures, 20)
        rollout.route_control_to(2)
        wait_for(answers, failures, 40)
        rollout.keep_latest("control", 1)
        rollout.load("control")  # version 1 leaves
        wait_for(answers, failures, 40)
        ready_1 = rollout.admin.get("/v2/models/control/versions/1/ready").status_code
        metrics = rollout.admin.get("/metrics").text
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()
    assert failures == []
    assert ready_1 == 400
    assert all(a["exp_group"] == "control" for a in answers)
    records = exposure_records(tmp_path / "log")
    scored = sorted((r for r in records if not r["fallback"]), key=lambda r: r["server_time"])
    versions = [r["version"] for r in scored]
    assert versions.count(1) > 20 and versions.count(2) > 20
    # one switch point: past the first version-2 record, only requests already in flight (at
    # most one per client) may still log version 1
    first_new = versions.index(2)
    assert versions[first_new:].count(1) <= CLIENTS
    assert versions[-1] == 2 and set(versions) == {1, 2}
    assert 'nv_inference_request_success{model="control",version="2"}' in metrics
    logs = server.logs()
    assert "loaded control version 2" in logs and "unloaded control version 1" in logs


def test_poll_refuses_a_corrupt_version_and_the_feed_keeps_answering(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    server = ServerProcess(
        tiny_world,
        repository,
        tmp_path / "log",
        env={"FEEDRANK_SERVER__ADMIN_TOKEN": TOKEN, "FEEDRANK_SERVER__REPOSITORY_POLL": "true"},
    )
    admin = httpx.Client(
        base_url=server.url, timeout=30.0, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    user = control_users(tiny_world, 1)[0]
    try:
        scratch = repository / "control" / ".publishing-2"
        scratch.mkdir()
        (scratch / "model.onnx").write_bytes(b"\x00corrupt")
        os.rename(scratch, repository / "control" / "2")
        deadline = time.monotonic() + 60
        entries: dict = {}
        # the index shows the version LOADING while the poll tries it, then the outcome
        while entries.get("2", {}).get("state", "LOADING") == "LOADING" and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
            entries = {
                e["version"]: e
                for e in admin.post("/v2/repository/index").json()
                if e["name"] == "control"
            }
        answer = admin.get("/post/recommendations/", params={"id": user, "time": "2021-10-20"})
        metadata = admin.get("/v2/models/control").json()
    finally:
        admin.close()
        server.stop()
    assert entries["2"]["state"] == "UNAVAILABLE" and "model.onnx" in entries["2"]["reason"]
    assert entries["1"]["state"] == "READY"
    assert answer.status_code == 200 and answer.json()["version"] == 1
    assert metadata["versions"] == ["1"]
    assert "control version 2 refused" in server.logs()
