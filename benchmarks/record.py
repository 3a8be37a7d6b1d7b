"""What every benchmark records (the machine, the library versions, the git commit) and how it
saves its result: JSON, a Markdown table and a PNG plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np


def machine() -> dict:
    import catboost
    import onnxruntime

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "catboost": catboost.__version__,
        "onnxruntime": onnxruntime.__version__,
        "git_commit": commit,
        "load_average": os.getloadavg(),
    }


def save(
    result: dict, out: Path, name: str, markdown: str, plot: Callable[[dict, Path], None]
) -> None:
    """`out/name.json`, `out/name.md` and `out/name.png`, then the table on the terminal."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(markdown)
    plot(result, out / f"{name}.png")
    print(markdown)


def world_workload(world: Path, users: int = 200) -> tuple[np.ndarray, np.ndarray, str]:
    """A load generator's inputs: a sample of user ids, every post id, and the world's last feed
    time to the second (ISO), when the features are richest."""
    import duckdb

    from feedrank.world.layout import WorldLayout

    layout = WorldLayout(world)
    sample = duckdb.sql(
        f"SELECT user_id FROM read_parquet('{layout.users}') USING SAMPLE {users} ROWS"
    ).fetchnumpy()["user_id"]
    posts = duckdb.sql(f"SELECT post_id FROM read_parquet('{layout.posts}')").fetchnumpy()[
        "post_id"
    ]
    ((last,),) = duckdb.sql(
        f"SELECT max(timestamp) FROM read_parquet('{layout.feed_glob}')"
    ).fetchall()
    return sample, posts, last.replace(microsecond=0).isoformat()


def plot_levels(series: dict[str, list[dict]], path: Path) -> None:
    """Throughput and p99 latency against concurrency, one line per server or setup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, runs in series.items():
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
