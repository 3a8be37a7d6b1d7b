"""Posted events under load: what a flood of likes costs the feed, and start-up with many likes.

Against a real `feedrank serve`:
1. a feed client alone (sequential requests) for `--duration` seconds: p50/p99;
2. the same client while another posts `--batches` batches of 10,000 likes from distinct users
   as fast as the server takes them: the feed's p50/p99 during the flood, each batch's time
   (flat as the live likes grow when adding is O(batch)), and the event loop's lag from
   /metrics (`feedrank_event_loop_lag_seconds`);
3. start-up: the server restarted on an events log holding `--replay` likes, ready time against
   an empty log, and its resident memory.

    .venv/bin/python benchmarks/events_flood.py --world data/world --repository model_repository
    .venv/bin/python benchmarks/events_flood.py --world W --repository R --quick

Writes benchmarks/results/events_flood{-quick}.{json,md,png}.
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
import psutil
from prometheus_client.parser import text_string_to_metric_families

from feedrank.ab.server_process import ServerProcess

from record import machine, save, world_workload

BATCH = 10_000
FIRST_USER = 10**12  # ids no world uses: every batch's users are new and distinct


def percentiles(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
    }


async def feed_client(url: str, users: np.ndarray, at: str, stop: asyncio.Event) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        rng = np.random.default_rng(0)
        while not stop.is_set():
            start = time.perf_counter()
            response = await client.get(
                "/post/recommendations/", params={"id": int(rng.choice(users)), "time": at}
            )
            assert response.status_code == 200, response.text
            latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def like_batch(index: int, posts: np.ndarray, at: str) -> bytes:
    users = FIRST_USER + index * BATCH + np.arange(BATCH)
    return json.dumps(
        [
            {
                "user_id": int(u),
                "post_id": int(posts[i % len(posts)]),
                "action": "like",
                "timestamp": at,
            }
            for i, u in enumerate(users)
        ]
    ).encode()


async def flood(url: str, bodies: list[bytes]) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for body in bodies:
            start = time.perf_counter()
            response = await client.post(
                "/feed/events", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 200, response.text
            times.append((time.perf_counter() - start) * 1e3)
    return times


def loop_lag(url: str) -> dict:
    """Observations of the loop-lag histogram, and how many were late by more than 5 / 25 ms."""
    text = httpx.get(f"{url}/metrics").text
    buckets, count = {}, 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "feedrank_event_loop_lag_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return {
        "observations": count,
        "over_5ms": count - buckets.get(0.005, count),
        "over_25ms": count - buckets.get(0.025, count),
    }


def phase(
    url: str, users: np.ndarray, at: str, duration: float, bodies: list[bytes] | None
) -> dict:
    async def run() -> tuple[list[float], list[float]]:
        stop = asyncio.Event()
        feeds = asyncio.create_task(feed_client(url, users, at, stop))
        if bodies:
            posted = await flood(url, bodies)
        else:
            await asyncio.sleep(duration)
            posted = []
        stop.set()
        return await feeds, posted

    before = loop_lag(url)
    latencies, posted = asyncio.run(run())
    after = loop_lag(url)
    lag = {k: after[k] - before[k] for k in after}
    return {"feed": percentiles(latencies), "batch_ms": posted, "loop_lag": lag}


def write_events_log(folder: Path, count: int, posts: np.ndarray, at: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"""COPY (SELECT {FIRST_USER} + i AS user_id,
                    (list_value({", ".join(map(str, posts[:50]))}))[1 + i % 50] AS post_id,
                    'like' AS action, TIMESTAMP '{at}' AS timestamp
                  FROM range({count}) t(i))
               TO '{folder}/events-20000101T000000Z-0001.jsonl' (FORMAT json)""")


def start_up(world: Path, repository: Path, log: Path) -> dict:
    start = time.perf_counter()
    with ServerProcess(world, repository, log) as server:
        ready = time.perf_counter() - start
        rss = psutil.Process(server.process.pid).memory_info().rss / 2**20
    return {"ready_s": ready, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--replay", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="seconds: 2 batches, 20,000 likes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.batches, args.replay = 2.0, 2, 20_000
    users, posts, at = world_workload(args.world)
    bodies = [like_batch(i, posts, at) for i in range(args.batches)]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with ServerProcess(args.world, args.repository, root / "log") as server:
            phase(server.url, users, at, 1.0, None)  # warm-up
            alone = phase(server.url, users, at, args.duration, None)
            flooded = phase(server.url, users, at, args.duration, bodies)
        empty = start_up(args.world, args.repository, root / "empty")
        write_events_log(root / "replay", args.replay, posts, at)
        replayed = start_up(args.world, args.repository, root / "replay")
    result = {
        "machine": machine(),
        "batch_events": BATCH,
        "batches": args.batches,
        "alone": alone,
        "flood": flooded,
        "replay_likes": args.replay,
        "start_up": {"empty": empty, "replay": replayed},
    }
    name = "events_flood" + ("-quick" if args.quick else "")
    save(result, args.out, name, markdown(result), plot)


def markdown(r: dict) -> str:
    a, f, s = r["alone"], r["flood"], r["start_up"]
    batch = np.array(f["batch_ms"])
    half = len(batch) // 2 or 1
    flood_name = f"during {r['batches']} batches of {r['batch_events']:,} likes"
    rows = [
        f"| {name} | {p['feed']['n']} | {p['feed']['p50_ms']:.1f} | "
        f"{p['feed']['p99_ms']:.1f} | {p['loop_lag']['observations']:.0f} | "
        f"{p['loop_lag']['over_5ms']:.0f} | {p['loop_lag']['over_25ms']:.0f} |"
        for name, p in (("alone", a), (flood_name, f))
    ]
    return "\n".join(
        [
            f"Events flood; {r['machine']['cpu']}, {r['machine']['cores']} cores, commit "
            f"{r['machine']['git_commit'][:10]}",
            "",
            "| feed client | requests | p50 ms | p99 ms | loop lag observations | over 5 ms | "
            "over 25 ms |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Batch time: median {np.median(batch):.0f} ms; "
            f"first half {np.median(batch[:half]):.0f}"
            f" ms, second half {np.median(batch[half:]):.0f} ms (live likes growing to "
            f"{r['batches'] * r['batch_events']:,}).",
            "",
            "| start-up | ready s | resident MB |",
            "|---|---|---|",
            f"| empty events log | {s['empty']['ready_s']:.1f} | {s['empty']['rss_mb']:.0f} |",
            f"| {r['replay_likes']:,} likes to replay | {s['replay']['ready_s']:.1f} | "
            f"{s['replay']['rss_mb']:.0f} |",
            "",
        ]
    )


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(r["flood"]["batch_ms"]) + 1), r["flood"]["batch_ms"], marker="o")
    ax.set_xlabel(f"batch of {r['batch_events']:,} likes (distinct new users)")
    ax.set_ylabel("POST /feed/events ms")
    ax.set_ylim(bottom=0)
    ax.set_title("Posting likes: time per batch as live likes grow")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
