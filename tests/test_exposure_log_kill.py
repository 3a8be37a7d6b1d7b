"""Durability: `kill -9` of a loaded server loses no record of an answer a client received."""

from __future__ import annotations

import asyncio

import duckdb
import httpx

from feedrank.server.exposure_log import query

from feed_serving import ServerProcess, built_repository


async def client_loop(url: str, received: list[str], seed: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        for i in range(100_000):
            user_id = 10**9 if i % 10 == 0 else 200 + (seed * 131 + i * 17) % 600
            try:
                response = await client.get(
                    "/post/recommendations/", params={"id": user_id, "time": "2021-10-25 18:30"}
                )
            except httpx.HTTPError:
                return  # the server is gone
            assert response.status_code == 200, response.text
            received.append(response.json()["request_id"])


async def load_then_kill(server: ServerProcess, received: list[str]) -> None:
    clients = [asyncio.create_task(client_loop(server.url, received, seed)) for seed in range(8)]
    while len(received) < 300 and not any(c.done() for c in clients):
        await asyncio.sleep(0.01)
    server.kill()  # SIGKILL while requests are in flight
    await asyncio.gather(*clients)


def test_every_received_answer_survives_kill_9(tiny_world, tmp_path):
    server = ServerProcess(tiny_world, built_repository(tiny_world), tmp_path / "log")
    received: list[str] = []
    try:
        asyncio.run(load_then_kill(server, received))
    finally:
        server.kill()
    assert server.process.returncode == -9
    logged = {
        r for (r,) in duckdb.sql(f"SELECT request_id FROM ({query(tmp_path / 'log')})").fetchall()
    }
    assert len(received) >= 300
    assert set(received) <= logged
