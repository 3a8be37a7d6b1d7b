"""A small HTTP load generator, run in its own process so that it never shares an event loop
with the server it measures.

Each of C connections (HTTP/1.1 keep-alive, raw asyncio streams: far lighter than an HTTP client
library, so the generator steals little CPU from the server on a 2-core machine) sends feed
requests for a fixed duration.

Closed loop (default): a connection sends its next request as soon as the previous answer has
arrived; the latency is the request's own service time at that concurrency.
Open loop (`--rate R`): requests are due at fixed intervals (R per second over all connections)
and each latency is measured from the time the request was *due*, not from when a free
connection sent it, so a stalled server cannot hide its queue (no coordinated omission).

Prints one JSON object: throughput, latency percentiles, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def feed_paths(user_ids: list[int], times: list[str], limit: int, seed: int):
    rng = random.Random(seed)
    while True:
        query = urlencode({"id": rng.choice(user_ids), "time": rng.choice(times), "limit": limit})
        yield f"/post/recommendations/?{query}"


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(
        (
            int(line.split(":", 1)[1])
            for line in lines[1:]
            if line.lower().startswith("content-length:")
        ),
        0,
    )
    await reader.readexactly(length)
    return status


async def connection(
    host: str, port: int, paths, deadline: float, tally: Tally, due_times: asyncio.Queue | None
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            if due_times is None:
                start = time.perf_counter()
                if start >= deadline:
                    return
            else:
                start = await due_times.get()
                if start is None:
                    return
            path = next(paths)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            try:
                status = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if status == 200:
                tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            else:
                tally.errors += 1
    finally:
        writer.close()


async def schedule(due_times: asyncio.Queue, rate: float, deadline: float, workers: int) -> None:
    interval, due = 1.0 / rate, time.perf_counter()
    while due < deadline:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        due_times.put_nowait(due)
        due += interval
    for _ in range(workers):
        due_times.put_nowait(None)


async def run(
    host: str, port: int, concurrency: int, duration: float, rate: float | None, paths
) -> dict:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    due_times: asyncio.Queue | None = asyncio.Queue() if rate else None
    tasks = [connection(host, port, paths, deadline, tally, due_times) for _ in range(concurrency)]
    if due_times is not None:
        tasks.append(schedule(due_times, rate, deadline, concurrency))
    await asyncio.gather(*tasks)
    return summarise(tally, time.perf_counter() - started, concurrency, rate)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarise(tally: Tally, elapsed: float, concurrency: int, rate: float | None) -> dict:
    lat = sorted(tally.latencies_ms)
    return {
        "concurrency": concurrency,
        "rate": rate,
        "seconds": round(elapsed, 3),
        "requests": len(lat),
        "errors": tally.errors,
        "statuses": tally.statuses,
        "throughput_rps": len(lat) / elapsed,
        "p50_ms": percentile(lat, 0.50),
        "p95_ms": percentile(lat, 0.95),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1] if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="open loop: requests per second in all")
    parser.add_argument("--users", required=True, help="comma-separated user ids to request")
    parser.add_argument("--times", required=True, help="comma-separated ISO request times")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = feed_paths(
        [int(u) for u in args.users.split(",")], args.times.split(","), args.limit, args.seed
    )
    result = asyncio.run(
        run(args.host, args.port, args.concurrency, args.duration, args.rate, paths)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
