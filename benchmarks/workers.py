"""`feedrank serve` with 1 worker against `--workers 2`, side by side in one run: throughput and
latency at each concurrency level (benchmarks/http_load.py, out of process), resident memory of
all the server's processes after warm-up.

    .venv/bin/python benchmarks/workers.py --world data/world --repository model_repository
    .venv/bin/python benchmarks/workers.py --world W --repository R --quick   # seconds

Writes benchmarks/results/workers{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from end_to_end import (
    PYTHON,
    RESULTS,
    fmt,
    free_port,
    load,
    requests_to_make,
    resident_mb,
    wait_ready,
)

from record import machine, save

WORKERS = (1, 2)


@contextmanager
def server(workers: int, world: Path, repository: Path, log_dir: Path):
    port = free_port()
    command = [PYTHON, "-m", "feedrank", "serve", "--world", str(world), "--repository"]
    command += [str(repository), "--port", str(port), "--log", str(log_dir)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(process, port)
        yield process, port
    finally:
        process.terminate()
        process.wait(60)


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
    rows = {(r["workers"], r["concurrency"]): r for r in result["runs"]}
    host = result["machine"]
    lines = [
        f"feedrank serve, 1 worker vs 2 ({result['duration_s']} s per level; {host['cpu']}, "
        f"{host['cores']} cores; commit {host['git_commit'][:10]})",
        "",
        "| concurrency | workers | req/s | p50 ms | p95 ms | p99 ms | errors | 2 ÷ 1 req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["concurrency"]:
        for w in WORKERS:
            r = rows[(w, c)]
            ratio = r["throughput_rps"] / max(rows[(1, c)]["throughput_rps"], 1e-9)
            lines.append(
                f"| {c} | {w} | {r['throughput_rps']:.1f} | {fmt(r['p50_ms'])} | "
                f"{fmt(r['p95_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} | "
                f"{f'{ratio:.2f}×' if w == 2 else ''} |"
            )
    lines += ["", "| workers | resident memory after warm-up (all processes) |", "|---|---|"]
    lines += [f"| {w} | {mb:.0f} MB |" for w, mb in result["memory_mb"].items()]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for w in WORKERS:
        runs = [r for r in result["runs"] if r["workers"] == w]
        label = f"{w} worker{'s' if w > 1 else ''}"
        concurrency = [r["concurrency"] for r in runs]
        left.plot(concurrency, [r["throughput_rps"] for r in runs], "o-", label=label)
        right.plot(concurrency, [r["p99_ms"] or 0 for r in runs], "o-", label=label)
    for axis, title in ((left, "throughput, requests/s"), (right, "p99 latency, ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections")
        axis.set_title(title)
        axis.legend()
    right.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="2 s at concurrency 1 and 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    levels = [1, 4] if args.quick else [int(c) for c in args.concurrency.split(",")]
    users, times = requests_to_make(args.world, args.users)
    result: dict = {
        "machine": machine(),
        "world": str(args.world),
        "duration_s": duration,
        "concurrency": levels,
        "memory_mb": {},
        "runs": [],
    }
    # both up at once, measured in turn at each level: the idle one takes no CPU, and the
    # machine's drift during the run falls on both alike
    with ExitStack() as stack:
        running = {
            workers: stack.enter_context(
                server(
                    workers,
                    args.world,
                    args.repository,
                    Path(stack.enter_context(tempfile.TemporaryDirectory())),
                )
            )
            for workers in WORKERS
        }
        for _, port in running.values():
            warm_up(port, users, times, rounds=1 if args.quick else 3)
        result["memory_mb"] = {w: resident_mb(process) for w, (process, _) in running.items()}
        for concurrency in levels:
            for workers, (_, port) in running.items():
                run = load(port, concurrency, duration, users, times)
                result["runs"].append({"workers": workers, **run})
    save(result, args.out, "workers" + ("-quick" if args.quick else ""), markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
