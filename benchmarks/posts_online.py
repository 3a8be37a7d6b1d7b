"""New posts online: how long until a posted post is ranked, and what posting does to the feed.

Against a real `feedrank serve` (the given world and repository, a fresh log folder):
1. one post per POST (`--single` of them, one after the other): the POST's round trip, which
   ends only when every loaded version ranks the post; a feed request right after it must count
   one more candidate;
2. batches of 100 posts per POST (`--batches` of them);
3. the feed under an open-loop load (benchmarks/http_load.py, out of process: `--rate` requests
   per second over `--concurrency` connections) for `--duration` seconds, first with no posts,
   then while posts stream in (`--posts-per-second`, one post per POST).

New posts are catalogue texts at random, each made new with a numbered line (no cache can answer),
and the catalogue's topics. The first POST, which opens the versions' text pipelines, is reported
apart. Writes benchmarks/results/posts_online{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from end_to_end import ranking_paths

from feedrank.ab.server_process import ServerProcess
from feedrank.world.layout import WorldLayout

from record import machine, save, world_workload

HERE = Path(__file__).parent


class NewPosts:
    """Posts nobody has seen: fresh ids after the catalogue's, catalogue texts made new."""

    def __init__(self, world: Path, seed: int) -> None:
        posts = pl.read_parquet(WorldLayout(world).posts)
        self.texts, self.topics = posts["text"].to_list(), posts["topic"].to_list()
        self.next_id = int(posts["post_id"].max()) + 1
        self.rng = np.random.default_rng(seed)

    def take(self, n: int) -> list[dict]:
        out = []
        for i in self.rng.choice(len(self.texts), n):
            out.append(
                {
                    "post_id": self.next_id,
                    "text": f"{self.texts[i]}\nnew post {self.next_id}",
                    "topic": self.topics[i],
                }
            )
            self.next_id += 1
        return out


def summary(values_ms: list[float]) -> dict:
    ordered = np.sort(values_ms)
    return {
        "n": len(ordered),
        "p50_ms": float(np.percentile(ordered, 50)),
        "p99_ms": float(np.percentile(ordered, 99)),
        "max_ms": float(ordered[-1]),
    }


def post_round_trips(
    client: httpx.Client, new: NewPosts, size: int, count: int, user: int, at: str
) -> dict:
    """`count` POSTs of `size` posts; after each, a feed must count the posts as candidates."""
    latencies = []
    params = {"id": user, "time": at, "limit": 5}
    candidates = client.get("/post/recommendations/", params=params).json()["candidates"]
    for _ in range(count):
        started = time.perf_counter()
        response = client.post("/posts", json=new.take(size))
        latencies.append((time.perf_counter() - started) * 1e3)
        response.raise_for_status()
        if response.json()["refused_by"]:
            raise RuntimeError(f"versions that cannot rank posts: {response.json()['refused_by']}")
        after = client.get("/post/recommendations/", params=params).json()["candidates"]
        if after != candidates + size:
            raise RuntimeError(f"{after} candidates after posting {size} to {candidates}")
        candidates = after
    return {"posts_per_request": size, **summary(latencies)}


def load_command(port: int, args: argparse.Namespace, users: list[int], at: str) -> list[str]:
    return [
        sys.executable,
        str(HERE / "http_load.py"),
        "--port",
        str(port),
        "--concurrency",
        str(args.concurrency),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--users",
        ",".join(map(str, users)),
        "--times",
        at,
    ]


async def stream_posts(url: str, new: NewPosts, rate: float, duration: float) -> dict:
    """One post per POST, due every 1/rate s (sent on time even while earlier ones wait)."""
    latencies: list[float] = []
    errors = 0

    async def send(client: httpx.AsyncClient, post: dict) -> None:
        nonlocal errors
        started = time.perf_counter()
        response = await client.post("/posts", json=[post])
        latencies.append((time.perf_counter() - started) * 1e3)
        errors += response.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started, sent = time.perf_counter(), []
        while (elapsed := time.perf_counter() - started) < duration:
            sent.append(asyncio.create_task(send(client, new.take(1)[0])))
            await asyncio.sleep(max(0.0, len(sent) / rate - elapsed))
        await asyncio.gather(*sent)
    return {"posts": len(sent), "errors": errors, **summary(latencies)}


def feed_load(
    server: ServerProcess, args: argparse.Namespace, users: list[int], at: str, new: NewPosts | None
) -> dict:
    """The feed's load (out of process), with the posts' stream beside it when `new` is given;
    the requests each ranking path took meanwhile."""
    before = ranking_paths(server.port)
    load = subprocess.Popen(load_command(server.port, args, users, at), stdout=subprocess.PIPE)
    result: dict = {}
    if new is not None:
        result["posting"] = asyncio.run(
            stream_posts(server.url, new, args.posts_per_second, args.duration)
        )
    out, _ = load.communicate()
    if load.returncode:
        raise RuntimeError(f"the load generator failed with {load.returncode}")
    after = ranking_paths(server.port)
    result["feed"] = json.loads(out)
    result["ranking_paths"] = {k: v - before.get(k, 0) for k, v in after.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("data/world"))
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--single", type=int, default=40)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0, help="feed requests per second")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--posts-per-second", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="5 single posts, 1 batch, 3 s loads")
    args = parser.parse_args()
    if args.quick:
        args.single, args.batches, args.duration = 5, 1, 3.0

    users, _, at = world_workload(args.world)
    users = [int(u) for u in users]
    new = NewPosts(args.world, args.seed)
    result: dict = {
        "machine": machine(),
        "world": str(args.world),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory() as scratch:
        with ServerProcess(args.world, args.repository, Path(scratch) / "log") as server:
            client = httpx.Client(base_url=server.url, timeout=300)
            result["first_post"] = post_round_trips(client, new, 1, 1, users[0], at)
            result["single"] = post_round_trips(client, new, 1, args.single, users[0], at)
            result["batch"] = post_round_trips(client, new, 100, args.batches, users[0], at)
            result["quiet"] = feed_load(server, args, users, at, None)
            result["streaming"] = feed_load(server, args, users, at, new)
    name = "posts_online" + ("-quick" if args.quick else "")
    save(result, args.out, name, markdown(result), plot)


def markdown(r: dict) -> str:
    host = r["machine"]
    lines = [
        f"New posts online ({r['world']}; {host['cpu']}, {host['cores']} cores; "
        f"commit {host['git_commit'][:10]})",
        "",
        "| POST | posts per request | requests | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("first_post", "single", "batch"):
        s = r[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {s['posts_per_request']} | {s['n']} | "
            f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} |"
        )
    a = r["args"]
    lines += [
        "",
        f"Feed at {a['rate']:g} requests/s over {a['concurrency']} connections, "
        f"{a['duration']:g} s each:",
        "",
        "| while | feed requests | p50 ms | p99 ms | errors | fast / plain rankings "
        "| posts (p50 / p99 ms per POST) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("quiet", "streaming"):
        run, feed = r[name], r[name]["feed"]
        paths = run["ranking_paths"]
        posting = run.get("posting")
        posted = (
            f"{posting['posts']} ({posting['p50_ms']:.0f} / {posting['p99_ms']:.0f})"
            if posting
            else "none"
        )
        stream = "no posts" if name == "quiet" else f"{a['posts_per_second']:g} posts/s"
        lines.append(
            f"| {stream} | "
            f"{feed['requests']} | {feed['p50_ms']:.1f} | {feed['p99_ms']:.1f} | "
            f"{feed['errors']} | {paths.get('fast', 0):.0f} / {paths.get('plain', 0):.0f} | "
            f"{posted} |"
        )
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = ["single", "batch"]
    axes[0].bar(
        [f"{r[n]['posts_per_request']} per POST" for n in names],
        [r[n]["p50_ms"] for n in names],
        label="p50",
    )
    axes[0].scatter(
        [f"{r[n]['posts_per_request']} per POST" for n in names],
        [r[n]["p99_ms"] for n in names],
        color="black",
        label="p99",
        zorder=3,
    )
    axes[0].set_ylabel("POST until rankable, ms")
    axes[0].legend()
    runs = ["quiet", "streaming"]
    for q, marker in (("p50_ms", "o"), ("p99_ms", "s")):
        axes[1].plot(
            ["no posts", "posts streaming"],
            [r[n]["feed"][q] for n in runs],
            marker=marker,
            label=q.split("_")[0],
        )
    axes[1].set_ylabel("feed request latency, ms")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
