"""Connection limits against a real `feedrank serve`: slow and idle clients are cut off after the
head deadline without starving a normal client, oversized heads get 431, connections past the
cap and requests past the in-flight cap get 503 with Retry-After, all in the JSON error shape."""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack

import httpx
import pytest

from feed_serving import ServerProcess, built_repository, first_user, last_moment

LIMITS = {
    "FEEDRANK_SERVER__HEADER_TIMEOUT_S": "1.5",
    "FEEDRANK_SERVER__MAX_CONNECTIONS": "300",
    "FEEDRANK_SERVER__MAX_HEADER_BYTES": "4096",
    "FEEDRANK_SERVER__MAX_HEADERS": "20",
    "FEEDRANK_SERVER__MAX_INFLIGHT": "5",
}


@pytest.fixture(scope="module")
def server(tiny_world, tmp_path_factory):
    log = tmp_path_factory.mktemp("limits") / "log"
    with ServerProcess(tiny_world, built_repository(tiny_world), log, env=LIMITS) as server:
        yield server


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read one response to the end of the connection (every refusal closes it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def feed_params(tiny_world) -> dict:
    return {"id": first_user(tiny_world), "time": last_moment(tiny_world)}


def test_slow_and_idle_clients_are_cut_off_and_do_not_starve_others(server, tiny_world):
    params = feed_params(tiny_world)
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(server)) for _ in range(50)]
        slow = [stack.enter_context(connect(server)) for _ in range(200)]
        for sock in slow:
            sock.sendall(b"GET /post/recommendations/?id=1 HTTP/1.1\r\nHost: x\r\n")
        opened = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=2.0) as client:
            started = time.perf_counter()
            normal = client.get("/post/recommendations/", params=params)
            took_ms = (time.perf_counter() - started) * 1e3
        assert normal.status_code == 200, normal.text
        print(f"a normal feed beside 250 slow or idle connections: {took_ms:.0f} ms")
        for sock in slow[:50]:  # trickling bytes does not extend the deadline
            sock.sendall(b"X-A: b\r\n")
        refusals = [answer(sock) for sock in idle + slow]
        waited = time.monotonic() - opened
    assert {status for status, _, _ in refusals} == {408}
    assert all("within 1.5 s" in body["error"] for _, _, body in refusals)
    assert waited < 30  # closed by the server, not by the test's socket timeout


def test_oversized_heads_get_431(server):
    with connect(server) as sock:
        sock.sendall(b"GET /router HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 50_000 + b"\r\n\r\n")
        status, _, body = answer(sock)
    assert status == 431 and "4096 bytes" in body["error"]
    with connect(server) as sock:
        sock.sendall(
            b"GET /router HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(30))
            + b"\r\n"
        )
        status, _, body = answer(sock)
    assert status == 431 and "20 header lines" in body["error"]
    assert httpx.get(f"{server.url}/router").status_code == 200


def test_connections_past_the_cap_get_503_with_retry_after(server):
    with ExitStack() as stack:
        held = [stack.enter_context(connect(server)) for _ in range(300)]
        time.sleep(0.2)
        extra = stack.enter_context(connect(server))
        status, headers, body = answer(extra)
        assert status == 503 and headers["retry-after"] == "1"
        assert "300 open connections" in body["error"]
        assert len(held) == 300


def test_requests_past_the_inflight_cap_get_503_at_once(server, tiny_world):
    with ExitStack() as stack:
        uploads = [stack.enter_context(connect(server)) for _ in range(5)]
        for sock in uploads:  # headers complete, body never sent: each request in progress
            sock.sendall(
                b"POST /feed/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: 1000\r\n\r\n["
            )
        time.sleep(0.3)
        refused = httpx.get(
            f"{server.url}/post/recommendations/", params=feed_params(tiny_world), timeout=5
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "5 requests in progress" in refused.json()["error"]
    for _ in range(50):  # the uploads' connections are gone: room again
        served = httpx.get(
            f"{server.url}/post/recommendations/", params=feed_params(tiny_world), timeout=5
        )
        if served.status_code == 200:
            break
        time.sleep(0.1)
    assert served.status_code == 200
