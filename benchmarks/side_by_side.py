"""Two feedrank servers side by side, the same load alternated between them in rounds.

For a change's effect on the request path: the checkout before it and this one, each serving
its world and repository, measured in the same minutes on the same machine (the machine's state
moves absolute figures between runs; the ratio of one run is what to read). The checkout before
is imported through a tree of links (scripts/package_tree.py), from a folder of its own.

    git worktree add /tmp/before 850a4a7
    .venv/bin/python benchmarks/side_by_side.py --before /tmp/before \\
        --world W --repository R [--world-before W0 --repository-before R0] --rounds 4
    .venv/bin/python benchmarks/side_by_side.py --world W --repository R --quick  # this one twice

Writes benchmarks/results/side_by_side{-quick}.{json,md,png} (`--name` for another name).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from course_scale import status_mb, wait_ready
from end_to_end import PYTHON, RESULTS, fmt, free_port, load, requests_to_make, warm_up

from record import machine, plot_levels, save

SIDES = ("before", "after")


@contextmanager
def server(checkout: Path | None, world: Path, repository: Path, scratch: Path):
    """`feedrank serve` from `checkout` (None: this one), run from `scratch`, where no
    `feedrank` folder can shadow the one meant."""
    env = dict(os.environ)
    if checkout is not None:
        tree = scratch / "package"
        subprocess.run(
            [PYTHON, str(checkout / "scripts" / "package_tree.py"), str(tree)], check=True
        )
        env["PYTHONPATH"] = str(tree)
    port = free_port()
    command = [PYTHON, "-m", "feedrank", "serve", "--world", str(world), "--repository"]
    command += [str(repository), "--port", str(port), "--log", str(scratch / "log")]
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield process, port, wait_ready(process, port, started)
    finally:
        process.terminate()
        process.wait(60)


def summary(runs: list[dict]) -> dict:
    return {
        "throughput_rps": statistics.median(r["throughput_rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "rounds": [round(r["throughput_rps"], 1) for r in runs],
    }


def markdown(result: dict) -> str:
    lines = [
        "# Side by side: the same load alternated between two servers",
        "",
        f"before: {result['before']['checkout']}; after: this checkout "
        f"({result['machine']['git_commit'][:10]}); {result['rounds']} rounds of "
        f"{result['seconds']} s per level, medians",
        "",
        "| concurrency | before req/s | p50 ms | p99 ms | after req/s | p50 ms | p99 ms "
        "| after ÷ before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in result["concurrency"]:
        b, a = (result[side]["levels"][str(level)] for side in SIDES)
        lines.append(
            f"| {level} | {b['throughput_rps']:.0f} | {fmt(b['p50_ms'])} | {fmt(b['p99_ms'])} "
            f"| {a['throughput_rps']:.0f} | {fmt(a['p50_ms'])} | {fmt(a['p99_ms'])} "
            f"| {a['throughput_rps'] / b['throughput_rps']:.2f}× |"
        )
    lines.append("")
    for side in SIDES:
        s = result[side]
        lines.append(
            f"{side}: ready after {s['ready_s']:.1f} s, resident after the load "
            f"{s['memory_mb']['VmRSS']:,.0f} MB (peak {s['memory_mb']['VmHWM']:,.0f} MB), "
            f"{sum(x['errors'] for x in s['levels'].values())} errors"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    plot_levels(
        {
            side: [{"concurrency": int(c), **v} for c, v in result[side]["levels"].items()]
            for side in SIDES
        },
        path,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the checkout before (default: this one)")
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--world-before", type=Path, help="default: --world")
    parser.add_argument("--repository-before", type=Path, help="default: --repository")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="one round of 1 s at 1 and 4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="side_by_side", help="the result files' name")
    args = parser.parse_args(argv)
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    levels = [1, 4] if args.quick else [int(c) for c in args.concurrency.split(",")]
    inputs = {
        "before": (args.world_before or args.world, args.repository_before or args.repository),
        "after": (args.world, args.repository),
    }
    checkouts = {"before": args.before.resolve() if args.before else None, "after": None}
    with ExitStack() as stack:
        running = {}
        for side in SIDES:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            running[side] = stack.enter_context(server(checkouts[side], *inputs[side], scratch))
        ids, times = requests_to_make(args.world, args.users)
        for _, port, _ in running.values():
            warm_up(port, ids, times)
        runs: dict = {side: {level: [] for level in levels} for side in SIDES}
        for round_ in range(rounds):
            for level in levels:
                for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                    runs[side][level].append(load(running[side][1], level, seconds, ids, times))
        result = {"machine": machine(), "rounds": rounds, "seconds": seconds, "concurrency": levels}
        for side, (process, _, ready_s) in running.items():
            result[side] = {
                "checkout": str(checkouts[side] or Path(__file__).resolve().parent.parent),
                "world": str(inputs[side][0]),
                "repository": str(inputs[side][1]),
                "ready_s": round(ready_s, 2),
                "memory_mb": status_mb(process.pid),
                "levels": {str(level): summary(runs[side][level]) for level in levels},
            }
    save(result, args.out, args.name + ("-quick" if args.quick else ""), markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
