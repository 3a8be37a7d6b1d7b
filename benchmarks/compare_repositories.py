"""Two or more model repositories served by feedrank on one world, in interleaved rounds.

A shared machine's speed drifts by tens of percent within minutes, so one run per repository
compares the machine's moments more than the models. Each round starts a server on every
repository in turn (warmed up on every request time) and loads it at every concurrency level
with the out-of-process generator (benchmarks/http_load.py); the table gives each repository's
median over rounds and its ratio to the first repository's.

    .venv/bin/python benchmarks/compare_repositories.py --world data/world \\
        --repository before=/path/to/earlier_repository --repository model_repository --rounds 3

A repository given as NAME=PATH is named NAME in the tables and the plot, else by its path.

Writes benchmarks/results/compare_repositories.{json,md,png}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from end_to_end import RESULTS, load, requests_to_make, server, warm_up

from record import machine, plot_levels, save


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--repository", type=named, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    users, times = requests_to_make(args.world, args.users)
    runs = []
    for round_ in range(args.rounds):
        for name, repository in args.repository:
            with (
                tempfile.TemporaryDirectory() as log_dir,
                server("feedrank", args.world, repository, Path(log_dir)) as (_, port),
            ):
                warm_up(port, users, times)
                for concurrency in levels:
                    run = load(port, concurrency, args.duration, users, times)
                    runs.append({"round": round_, "repository": name, **run})
                    print(round_, name, concurrency, f"{run['throughput_rps']:.1f} req/s")
    result = {
        "machine": machine(),
        "world": str(args.world),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "concurrency": levels,
        "repositories": [name for name, _ in args.repository],
        "paths": {name: str(path) for name, path in args.repository},
        "runs": runs,
        "medians": medians(runs, levels),
    }
    save(result, args.out, "compare_repositories", markdown(result), plot)
    return result


def named(value: str) -> tuple[str, Path]:
    name, separator, path = value.partition("=")
    return (name, Path(path)) if separator and name else (value, Path(value))


def medians(runs: list[dict], levels: list[int]) -> dict[str, list[dict]]:
    """Per repository, per level: the median over rounds of throughput and p99."""
    out: dict[str, list[dict]] = {}
    for repository in dict.fromkeys(r["repository"] for r in runs):
        for concurrency in levels:
            same = [
                r for r in runs if r["repository"] == repository and r["concurrency"] == concurrency
            ]
            out.setdefault(repository, []).append(
                {
                    "concurrency": concurrency,
                    "throughput_rps": statistics.median(r["throughput_rps"] for r in same),
                    "p99_ms": statistics.median(r["p99_ms"] or 0 for r in same),
                    "rounds": [r["throughput_rps"] for r in same],
                }
            )
    return out


def markdown(result: dict) -> str:
    host, table = result["machine"], result["medians"]
    first = table[result["repositories"][0]]
    lines = [
        f"feedrank on each repository, {result['rounds']} interleaved rounds of "
        f"{result['duration_s']} s per level ({host['cpu']}, {host['cores']} cores; commit "
        f"{host['git_commit'][:10]}): median req/s (each round's), ratio to the first",
        "",
        "| concurrency | " + " | ".join(table) + " |",
        "|---|" + "---|" * len(table),
    ]
    for k, concurrency in enumerate(result["concurrency"]):
        cells = []
        for levels in table.values():
            level = levels[k]
            ratio = level["throughput_rps"] / max(first[k]["throughput_rps"], 1e-9)
            rounds = ", ".join(f"{v:.0f}" for v in level["rounds"])
            cells.append(f"{level['throughput_rps']:.1f} ({rounds}) {ratio:.2f}×")
        lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    plot_levels(result["medians"], path)


if __name__ == "__main__":
    main()
