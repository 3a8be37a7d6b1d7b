"""`feedrank serve` as one process, as `--workers 2`, and as a Ray Serve application with 2
replicas (`--engine ray`, a local Ray cluster), side by side in one run: throughput and latency
at each concurrency level (benchmarks/http_load.py, out of process), resident memory of each
server's processes after warm-up (Ray's own processes included).

    .venv/bin/python benchmarks/scale_out.py --world data/world --repository model_repository
    .venv/bin/python benchmarks/scale_out.py --world W --repository R --quick   # seconds

Writes benchmarks/results/scale_out{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from end_to_end import (
    PYTHON,
    fmt,
    free_port,
    load,
    load_arguments,
    requests_to_make,
    resident_mb,
    wait_ready,
)

from record import machine, plot_levels, save

SETUPS = {
    "1 process": [],
    "2 workers": ["--workers", "2"],
    "ray, 2 replicas": ["--engine", "ray", "--replicas", "2"],
}
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@contextmanager
def server(setup: str, world: Path, repository: Path, log_dir: Path):
    port = free_port()
    command = [PYTHON, "-m", "feedrank", "serve", "--world", str(world), "--repository"]
    command += [str(repository), "--port", str(port), "--log", str(log_dir), *SETUPS[setup]]
    env = {**os.environ, **RAY_ENV}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_ready(process, port)
        # Ray's proxy answers, or holds a request, before the application is deployed
        deadline = time.monotonic() + 600
        while not ready(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield process, port
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(120)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/router", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def warm_up(port: int, users: list[int], times: list[str], rounds: int = 3) -> None:
    """Rounds of requests at every time, with pauses: each worker builds its own fast-path
    rankers in the background (per-process /metrics cannot say when all of them are done)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for _ in range(rounds):
            for user in users[:40]:
                for at in times:
                    client.get("/post/recommendations/", params={"id": user, "time": at})
            time.sleep(3.0)


def markdown(result: dict) -> str:
    rows = {(r["setup"], r["concurrency"]): r for r in result["runs"]}
    host = result["machine"]
    first = next(iter(SETUPS))
    lines = [
        f"feedrank serve: one process, --workers 2, Ray Serve with 2 replicas "
        f"({result['duration_s']} s per level; {host['cpu']}, {host['cores']} cores; "
        f"commit {host['git_commit'][:10]})",
        "",
        f"| concurrency | setup | req/s | p50 ms | p95 ms | p99 ms | errors | ÷ {first} req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["concurrency"]:
        for setup in result["setups"]:
            r = rows[(setup, c)]
            ratio = r["throughput_rps"] / max(rows[(first, c)]["throughput_rps"], 1e-9)
            lines.append(
                f"| {c} | {setup} | {r['throughput_rps']:.1f} | {fmt(r['p50_ms'])} | "
                f"{fmt(r['p95_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} | "
                f"{f'{ratio:.2f}×' if setup != first else ''} |"
            )
    lines += ["", "| setup | resident memory after warm-up (all its processes) |", "|---|---|"]
    lines += [f"| {setup} | {mb:.0f} MB |" for setup, mb in result["memory_mb"].items()]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    plot_levels({n: [r for r in result["runs"] if r["setup"] == n] for n in result["setups"]}, path)


def main(argv: list[str] | None = None) -> dict:
    parser = load_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument(
        "--no-ray", dest="ray", action="store_false", help="leave the Ray Serve setup out"
    )
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    levels = [1, 4] if args.quick else [int(c) for c in args.concurrency.split(",")]
    users, times = requests_to_make(args.world, args.users)
    setups = [s for s in SETUPS if args.ray or not s.startswith("ray")]
    result: dict = {
        "setups": setups,
        "machine": machine(),
        "world": str(args.world),
        "duration_s": duration,
        "concurrency": levels,
        "memory_mb": {},
        "runs": [],
    }
    # all up at once, measured in turn at each level: an idle one takes no CPU, and the
    # machine's drift during the run falls on all alike
    with ExitStack() as stack:
        running = {
            setup: stack.enter_context(
                server(
                    setup,
                    args.world,
                    args.repository,
                    Path(stack.enter_context(tempfile.TemporaryDirectory())),
                )
            )
            for setup in setups
        }
        for _, port in running.values():
            warm_up(port, users, times, rounds=1 if args.quick else 3)
        result["memory_mb"] = {s: resident_mb(process) for s, (process, _) in running.items()}
        for concurrency in levels:
            for setup, (_, port) in running.items():
                run = load(port, concurrency, duration, users, times)
                result["runs"].append({"setup": setup, **run})
    save(result, args.out, "scale_out" + ("-quick" if args.quick else ""), markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
