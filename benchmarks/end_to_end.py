"""End to end over HTTP: feedrank against the course-style reference service, side by side.

Both servers load the same world, router and model versions. Before measuring, the script
checks that they give the same posts for the same (user, time). Then, for each concurrency level,
it runs the out-of-process load generator (benchmarks/http_load.py) against feedrank and against
the reference, one after the other, for a fixed duration each: throughput, p50/p95/p99 latency,
errors. It also records each server's resident memory after warm-up.

    .venv/bin/python benchmarks/end_to_end.py --world data/world --repository model_repository
    .venv/bin/python benchmarks/end_to_end.py --world W --repository R --quick   # seconds

Writes benchmarks/results/end_to_end{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from record import machine, plot_levels, save

HERE = Path(__file__).parent
RESULTS = HERE / "results"
PYTHON = sys.executable
SERVERS = ("feedrank", "course")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(name: str, world: Path, repository: Path, log_dir: Path):
    port = free_port()
    if name == "feedrank":
        command = [
            PYTHON,
            "-m",
            "feedrank",
            "serve",
            "--world",
            str(world),
            "--repository",
            str(repository),
            "--port",
            str(port),
            "--log",
            str(log_dir),
        ]
    else:
        command = [
            PYTHON,
            str(HERE / "course_service.py"),
            "--world",
            str(world),
            "--repository",
            str(repository),
            "--port",
            str(port),
        ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(process, port)
        yield process, port
    finally:
        process.terminate()
        process.wait(30)


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError("server did not start in time")


def requests_to_make(world: Path, users: int) -> tuple[list[int], list[str]]:
    """Users with history (the fallback path is not what is measured) and request times on the
    world's last day, when the models' features are richest."""
    feed = f"read_parquet('{world}/feed_data/*.parquet')"
    ids = [
        r[0]
        for r in duckdb.sql(
            f"SELECT DISTINCT user_id FROM {feed} ORDER BY hash(user_id) LIMIT {users}"
        ).fetchall()
    ]
    last = duckdb.sql(f"SELECT max(timestamp)::DATE FROM {feed}").fetchall()[0][0]
    return ids, [f"{last}T{hour:02d}:00:00" for hour in (9, 13, 18, 21)]


def same_answers(ports: dict[str, int], users: list[int], times: list[str]) -> dict:
    """Top 5 of both servers, equal up to the order of near-ties (CatBoost scores within 1e-5,
    the parity gate's tolerance: float32 onnxruntime and float64 CatBoost may order them
    differently)."""
    checked, differ = 0, []
    for user, at in zip(users[:40], times * 10):
        answers = {
            name: httpx.get(
                f"http://127.0.0.1:{port}/post/recommendations/",
                params={"id": user, "time": at, "limit": 5},
                timeout=60,
            ).json()
            for name, port in ports.items()
        }
        ours, theirs = ([p["id"] for p in answers[name]["recommendations"]] for name in SERVERS)
        scores = {int(k): v for k, v in answers["course"]["scores"].items()}
        checked += 1
        if not all(
            a == b or abs(scores.get(a, -1.0) - scores[b]) <= 1e-5 for a, b in zip(ours, theirs)
        ):
            differ.append({"user": user, "time": at, "feedrank": ours, "course": theirs})
    return {"checked": checked, "different": differ}


def warm_up(port: int, users: list[int], times: list[str], timeout_s: float = 300) -> None:
    """Requests until the answers come from warm state: for feedrank, until a whole round over
    every request time is ranked by the fast path. Its rankers build in the background on an
    hour's first request, one per model and hour: a time left out of the warm-up would have its
    builds (and plain-model answers) counted in the first measured level."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = ranking_paths(port)
        for at in times:
            for user in users[:20]:
                httpx.get(
                    f"http://127.0.0.1:{port}/post/recommendations/",
                    params={"id": user, "time": at},
                    timeout=60,
                )
        after = ranking_paths(port)
        if after.get("plain", 0) == before.get("plain", 0) or time.monotonic() > deadline:
            return
        time.sleep(1.0)


def ranking_paths(port: int) -> dict[str, float]:
    """feedrank's requests by ranking path ("fast", "plain") summed over models; {} for a server
    without that counter (the course service, or feedrank with --no-fast-path)."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    if response.status_code != 200:
        return {}
    paths: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name == "feedrank_ranking_path_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    path = sample.labels["path"]
                    paths[path] = paths.get(path, 0) + sample.value
    return paths


def resident_mb(process: subprocess.Popen) -> float:
    main = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20


def load(port: int, concurrency: int, duration: float, users: list[int], times: list[str]) -> dict:
    out = subprocess.run(
        [
            PYTHON,
            str(HERE / "http_load.py"),
            "--port",
            str(port),
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--users",
            ",".join(map(str, users)),
            "--times",
            ",".join(times),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def markdown(result: dict) -> str:
    rows = {(r["server"], r["concurrency"]): r for r in result["runs"]}
    host = result["machine"]
    lines = [
        f"End to end over HTTP ({result['duration_s']} s per level; {host['cpu']}, "
        f"{host['cores']} cores; commit {host['git_commit'][:10]})",
        "",
        "| concurrency | server | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| feedrank ÷ course req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["concurrency"]:
        for name in SERVERS:
            r = rows[(name, c)]
            ratio = r["throughput_rps"] / max(rows[("course", c)]["throughput_rps"], 1e-9)
            lines.append(
                f"| {c} | {name} | {r['throughput_rps']:.1f} | {fmt(r['p50_ms'])} | "
                f"{fmt(r['p95_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} | "
                f"{f'{ratio:.1f}×' if name == 'feedrank' else ''} |"
            )
    lines += ["", "| server | resident memory after warm-up |", "|---|---|"]
    lines += [f"| {name} | {mb:.0f} MB |" for name, mb in result["memory_mb"].items()]
    same = result["same_answers"]
    lines += [
        "",
        f"Same top 5 from both servers: {same['checked'] - len(same['different'])}"
        f" of {same['checked']} requests.",
    ]
    paths = result.get("ranking_paths") or {}
    if paths:
        lines += [
            "",
            "feedrank requests by ranking path (warm-up included): "
            + ", ".join(f"{path} {count:.0f}" for path, count in sorted(paths.items())),
        ]
    return "\n".join(lines) + "\n"


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def plot(result: dict, path: Path) -> None:
    plot_levels({n: [r for r in result["runs"] if r["server"] == n] for n in SERVERS}, path)


def load_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a load run over HTTP: servers' inputs, levels, duration, output."""
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="2 s at concurrency 1 and 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = load_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    levels = [1, 4] if args.quick else [int(c) for c in args.concurrency.split(",")]
    users, times = requests_to_make(args.world, args.users)
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        running = {
            name: stack.enter_context(server(name, args.world, args.repository, log_dir))
            for name in SERVERS
        }
        ports = {name: port for name, (_, port) in running.items()}
        for port in ports.values():
            warm_up(port, users, times)
        result = {
            "machine": machine(),
            "world": str(args.world),
            "duration_s": duration,
            "concurrency": levels,
            "same_answers": same_answers(ports, users, times),
            "memory_mb": {name: resident_mb(proc) for name, (proc, _) in running.items()},
            "runs": [],
        }
        for concurrency in levels:
            for name in SERVERS:
                run = load(ports[name], concurrency, duration, users, times)
                result["runs"].append({"server": name, **run})
        result["ranking_paths"] = ranking_paths(ports["feedrank"])
    save(result, args.out, "end_to_end" + ("-quick" if args.quick else ""), markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
