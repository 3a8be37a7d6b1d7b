"""`feedrank serve --workers 2`: two processes on one port, each answer naming its process, one
log folder for both, a like posted through one excluded by the other, no answer unlogged."""

from __future__ import annotations

import time

import httpx

from feed_serving import (
    ServerProcess,
    built_repository,
    exposure_records,
    first_user,
    last_moment,
    later,
    like,
)


def test_two_workers_serve_one_port_with_one_log_folder_and_shared_likes(tiny_world, tmp_path):
    log = tmp_path / "log"
    user, at = first_user(tiny_world), last_moment(tiny_world)
    then = later(at, 60)
    answered = 0
    with ServerProcess(tiny_world, built_repository(tiny_world), log, "--workers", "2") as server:
        replicas = set()
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            response = httpx.get(
                f"{server.url}/post/recommendations/", params={"id": user, "time": then}
            )
            assert response.status_code == 200
            answered += 1
            replicas.add(response.headers["x-feedrank-replica"])
        assert len(replicas) == 2, replicas
        top = response.json()["recommendations"][0]["id"]
        posted = httpx.post(f"{server.url}/feed/events", json=[like(user, top, at)])
        assert posted.status_code == 200
        time.sleep(1.0)
        after = set()
        for _ in range(20):  # whichever worker answers
            response = httpx.get(
                f"{server.url}/post/recommendations/", params={"id": user, "time": then}
            )
            assert top not in [p["id"] for p in response.json()["recommendations"]]
            after.add(response.headers["x-feedrank-replica"])
            answered += 1
        assert after == replicas  # both excluded it
        port = int(server.url.rsplit(":", 1)[1])
        scraped = {  # each worker's own metrics port
            httpx.get(f"http://127.0.0.1:{port + i}/metrics").headers["x-feedrank-replica"]
            for i in (1, 2)
        }
        assert scraped == replicas
    assert len(exposure_records(log)) == answered
    assert len({p.name for p in log.glob("exposures-*.jsonl")}) >= 2
