"""Faults and attacks against a real `feedrank serve`, in figures.

1. kill -9 under load, `--kills` times on one log folder (restarted each time on what the crash
   left): answers clients received, and how many of them the exposure log lacks;
2. a full disk (the server under a file-size limit): answers received before the log refused,
   how many the log lacks, and bytes a refused 10,000-like batch left on disk;
3. a slow-client attack: a normal client's feed latency alone and beside `--slow` connections
   that never finish their headers (re-opened as the server cuts them off).

    .venv/bin/python benchmarks/reliability.py --world data/world --repository model_repository
    .venv/bin/python benchmarks/reliability.py --world W --repository R --quick

Writes benchmarks/results/reliability{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import duckdb
import httpx
import numpy as np

from feedrank.ab.server_process import ServerProcess
from feedrank.server.events import log_files
from feedrank.server.exposure_log import query

from record import machine, save, world_workload


def logged_ids(log: Path) -> set[str]:
    if not any(log.glob("exposures-*.jsonl")):
        return set()
    return {r for (r,) in duckdb.sql(f"SELECT request_id FROM ({query(log)})").fetchall()}


async def clients(
    url: str,
    users: np.ndarray,
    at: str,
    received: list[str],
    count: int,
    stop_on: int | None = None,
) -> dict[int, int]:
    """`count` clients sending feeds until the server goes away (or answers `stop_on`)."""
    statuses: dict[int, int] = {}

    async def one(seed: int) -> None:
        rng = np.random.default_rng(seed)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            while True:
                try:
                    response = await client.get(
                        "/post/recommendations/", params={"id": int(rng.choice(users)), "time": at}
                    )
                except httpx.HTTPError:
                    return
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    received.append(response.json()["request_id"])
                elif response.status_code == stop_on:
                    return

    await asyncio.gather(*(one(seed) for seed in range(count)))
    return statuses


def kill_rounds(
    world: Path, repository: Path, log: Path, users: np.ndarray, at: str, kills: int, answers: int
) -> dict:
    received: list[str] = []

    async def load_then_kill(server: ServerProcess, before: int) -> None:
        task = asyncio.ensure_future(clients(server.url, users, at, received, 8))
        while len(received) - before < answers and not task.done():
            await asyncio.sleep(0.01)
        server.kill()
        await task

    for _ in range(kills):
        asyncio.run(load_then_kill(ServerProcess(world, repository, log).start(), len(received)))
    lost = set(received) - logged_ids(log)
    return {"kills": kills, "answered": len(received), "lost": len(lost)}


def full_disk(
    world: Path,
    repository: Path,
    root: Path,
    users: np.ndarray,
    at: str,
    posts: np.ndarray,
    file_bytes: int,
) -> dict:
    log = root / "full"
    server = ServerProcess(world, repository, log, root / "full.out")
    server.command = ["prlimit", f"--fsize={file_bytes}:", *server.command]
    received: list[str] = []
    with server.start():
        flood = [
            {
                "user_id": 10**12 + i,
                "post_id": int(posts[i % len(posts)]),
                "action": "like",
                "timestamp": at,
            }
            for i in range(10_000)
        ]
        refused_batch = httpx.post(f"{server.url}/feed/events", json=flood, timeout=60)
        statuses = asyncio.run(clients(server.url, users, at, received, 4, stop_on=503))
    events_bytes = sum(p.stat().st_size for p in log_files(log))
    torn = [
        p.name
        for p in log.glob("*.jsonl")
        if p.stat().st_size and not p.read_bytes().endswith(b"\n")
    ]
    return {
        "file_limit_bytes": file_bytes,
        "answered": len(received),
        "lost": len(set(received) - logged_ids(log)),
        "statuses": statuses,
        "batch_status": refused_batch.status_code,
        "batch_bytes_left": events_bytes,
        "torn_files": torn,
    }


async def slow_attack(
    url: str, port: int, users: np.ndarray, at: str, duration: float, slow: int
) -> list[float]:
    """Feed latencies of one sequential client; `slow` half-sent heads held open meanwhile."""
    stop = asyncio.Event()

    async def attacker() -> None:
        while not stop.is_set():
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /post/recommendations/?id=1 HTTP/1.1\r\nHost: x\r\n")
                while not stop.is_set() and not writer.is_closing():
                    await asyncio.sleep(0.5)
                    writer.write(b"X-Slow: 1\r\n")  # a trickle, never the end of the head
                    await writer.drain()
            except (OSError, ConnectionError):
                await asyncio.sleep(0.05)

    attackers = [asyncio.create_task(attacker()) for _ in range(slow)]
    await asyncio.sleep(1.0 if slow else 0)
    latencies = []
    rng = np.random.default_rng(0)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.get(
                "/post/recommendations/", params={"id": int(rng.choice(users)), "time": at}
            )
            assert response.status_code == 200, response.text
            latencies.append((time.perf_counter() - start) * 1e3)
    stop.set()
    await asyncio.gather(*attackers, return_exceptions=True)
    return latencies


def attack(
    world: Path, repository: Path, log: Path, users: np.ndarray, at: str, duration: float, slow: int
) -> dict:
    with ServerProcess(world, repository, log) as server:
        alone = asyncio.run(slow_attack(server.url, server.port, users, at, duration, 0))
        attacked = asyncio.run(slow_attack(server.url, server.port, users, at, duration, slow))
    summary = {
        name: {
            "n": len(v),
            "p50_ms": float(np.percentile(v, 50)),
            "p99_ms": float(np.percentile(v, 99)),
            "max_ms": float(max(v)),
        }
        for name, v in (("alone", alone), ("attacked", attacked))
    }
    return {"slow_connections": slow, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--answers", type=int, default=500, help="answers before each kill")
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="seconds: 1 kill, 20 slow clients")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.answers, args.slow, args.duration = 1, 100, 20, 2.0
    users, posts, at = world_workload(args.world)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        result = {
            "machine": machine(),
            "kill_9": kill_rounds(
                args.world, args.repository, root / "killed", users, at, args.kills, args.answers
            ),
            "full_disk": full_disk(args.world, args.repository, root, users, at, posts, 256 * 1024),
            "slow_clients": attack(
                args.world, args.repository, root / "attack", users, at, args.duration, args.slow
            ),
        }
    name = "reliability" + ("-quick" if args.quick else "")
    save(result, args.out, name, markdown(result), plot)


def markdown(r: dict) -> str:
    k, d, s = r["kill_9"], r["full_disk"], r["slow_clients"]
    return "\n".join(
        [
            f"Reliability; {r['machine']['cpu']}, {r['machine']['cores']} cores, commit "
            f"{r['machine']['git_commit'][:10]}",
            "",
            "| fault | answers received | missing from the exposure log | other |",
            "|---|---|---|---|",
            f"| kill -9 under load, {k['kills']} times | {k['answered']:,} | {k['lost']} | |",
            f"| full disk ({d['file_limit_bytes'] // 1024} KiB files) | {d['answered']:,} | "
            f"{d['lost']} | 10,000-like batch: {d['batch_status']}, {d['batch_bytes_left']} bytes "
            f"left; torn files: {len(d['torn_files'])}; statuses {json.dumps(d['statuses'])} |",
            "",
            "| normal client (sequential feeds) | requests | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | {v['n']} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | {v['max_ms']:.1f} |"
                for name, v in (
                    ("alone", s["alone"]),
                    (f"beside {s['slow_connections']} slow-header connections", s["attacked"]),
                )
            ),
            "",
        ]
    )


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r["slow_clients"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = ["alone", f"{s['slow_connections']} slow clients"]
    for i, key in enumerate(("p50_ms", "p99_ms")):
        ax.bar(
            np.arange(2) + i * 0.4,
            [s["alone"][key], s["attacked"][key]],
            0.4,
            label=key.replace("_ms", ""),
        )
    ax.set_xticks(np.arange(2) + 0.2, labels)
    ax.set_ylabel("feed latency, ms")
    ax.set_title("A normal client beside a slow-header attack")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
