"""Course scale: the course's 163,205 users, 7,023 posts and ~77 M feed rows, built and served here.

The world is generated once into a cache folder. Then, each run:
- `feedrank build` from scratch (the world's features folder removed first): wall time, peak
  resident memory, and where the time goes (the features' steps from their manifest, each
  model's training and publishing from the build's own lines);
- `feedrank serve`: seconds until `/v2/health/ready` answers, the peak resident memory while
  starting, then the resident memory after a warm-up and the load (anonymous and file-backed:
  the stored history is mapped from disk) and the peak over the whole run;
- latency and throughput at each concurrency level (benchmarks/http_load.py, out of process).

    .venv/bin/python benchmarks/course_scale.py                 # ~30 min the first time
    .venv/bin/python benchmarks/course_scale.py --skip-build    # serve the last build again
    .venv/bin/python benchmarks/course_scale.py --views 4000000 # the default world's size
    .venv/bin/python benchmarks/course_scale.py --quick         # a tiny world, about a minute

Writes benchmarks/results/course_scale{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from end_to_end import PYTHON, RESULTS, free_port, load, requests_to_make, warm_up

from record import machine, save

CACHE = Path(__file__).parent.parent / ".cache" / "course_scale"
COURSE = {"users": 163_205, "posts": 7_023, "views": 69_000_000}
QUICK = {"users": 600, "posts": 120, "views": 40_000}


def world(cache: Path, size: dict) -> Path:
    """The generated world of `size` in the cache, made once."""
    path = cache / "world-{users}-{posts}-{views}".format(**size)
    if not (path / "world.json").exists():
        options = [f"--{key}={value}" for key, value in size.items()]
        command = [PYTHON, "-m", "feedrank", "world", "generate", "--out", str(path), "--force"]
        subprocess.run(command + options, check=True)
    return path


def status_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS, and its anonymous and file-backed parts) and
    its peak so far (VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def build(world: Path, repository: Path, iterations: int | None) -> dict:
    """A build from scratch: wall time, peak RSS, and when each of its lines came."""
    shutil.rmtree(world / "features", ignore_errors=True)
    shutil.rmtree(repository, ignore_errors=True)
    command = [PYTHON, "-m", "feedrank", "build", "--world", str(world)]
    command += ["--repository", str(repository)]
    command += [] if iterations is None else ["--iterations", str(iterations)]
    started = time.monotonic()
    env = {**os.environ, "COLUMNS": "250"}  # one line per message, not wrapped at 80
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines = [
        {"after_s": round(time.monotonic() - started, 1), "line": line.rstrip()}
        for line in process.stderr or []
    ]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("build failed:\n" + "\n".join(x["line"] for x in lines[-20:]))
    manifest = json.loads((world / "features" / "manifest.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "feature_steps_s": manifest["seconds"],
        "lines": lines,
    }


class Sampler(threading.Thread):
    """Resident memory of a process every `every` seconds, until stopped."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.started = pid, every, time.monotonic()
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                mb = status_mb(self.pid)
            except OSError:
                return
            self.samples.append({"t": round(time.monotonic() - self.started, 2), **mb})


def serve(world: Path, repository: Path, levels: list[int], duration: float, users: int) -> dict:
    port = free_port()
    command = [PYTHON, "-m", "feedrank", "serve", "--world", str(world), "--repository"]
    with tempfile.TemporaryDirectory() as log_dir:
        command += [str(repository), "--port", str(port), "--log", log_dir]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sampler = Sampler(process.pid)
        sampler.start()
        try:
            ready_s = wait_ready(process, port, started)
            at_ready = status_mb(process.pid)
            ids, times = requests_to_make(world, users)
            warm_up(port, ids, times)
            runs = [load(port, c, duration, ids, times) for c in levels]
            after = status_mb(process.pid)
        finally:
            sampler.stopped.set()
            process.terminate()
            process.wait(60)
    return {
        "ready_s": round(ready_s, 2),
        "start_up_peak_mb": round(at_ready["VmHWM"]),
        "after_load_mb": {k: round(after[k]) for k in ("VmRSS", "RssAnon", "RssFile")},
        "peak_mb": round(after["VmHWM"]),
        "runs": runs,
        "memory": sampler.samples,
    }


def wait_ready(process: subprocess.Popen, port: int, started: float, timeout: float = 900) -> float:
    """Seconds from the start until the server says it is ready to rank."""
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready in time")


def markdown(result: dict) -> str:
    size, serving = result["world_size"], result["serve"]
    lines = [
        f"# Course scale: {size['users']:,} users, {size['posts']:,} posts, "
        f"{result['feed_rows']:,} feed rows",
        "",
        f"{result['machine']['cores']} cores ({result['machine']['cpu']}), "
        f"commit {result['machine']['git_commit'][:10]}",
        "",
    ]
    if result.get("build"):
        b = result["build"]
        lines += ["| build | |", "|---|---|", f"| wall time | {_minutes(b['wall_s'])} |"]
        lines += [f"| peak resident memory | {b['peak_rss_mb']:,} MB |"]
        lines += [
            f"| features: {step} | {_minutes(s)} |" for step, s in b["feature_steps_s"].items()
        ]
        lines += [f"| at {_minutes(x['after_s'])} | {x['line']} |" for x in b["lines"]]
        lines += [""]
    after = serving["after_load_mb"]
    lines += [
        "| server | |",
        "|---|---|",
        f"| ready after | {serving['ready_s']:.1f} s |",
        f"| peak resident memory while starting | {serving['start_up_peak_mb']:,} MB |",
        f"| resident after the load | {after['VmRSS']:,} MB "
        f"({after['RssAnon']:,} anonymous, {after['RssFile']:,} file-backed: libraries and the "
        "mapped history) |",
        f"| peak resident memory, whole run | {serving['peak_mb']:,} MB |",
        "",
        "| concurrency | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    for run in serving["runs"]:
        lines.append(
            f"| {run['concurrency']} | {run['throughput_rps']:.0f} | {run['p50_ms']:.1f} "
            f"| {run['p99_ms']:.1f} | {run['errors']} |"
        )
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    return (
        f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
    )


def plot(result: dict, path: Path) -> None:
    """The server's resident memory from its start to the end of the load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["serve"]["memory"]
    fig, axis = plt.subplots(figsize=(8, 4))
    t = [s["t"] for s in samples]
    for name, label in (
        ("VmRSS", "resident"),
        ("RssAnon", "anonymous"),
        ("RssFile", "file-backed (libraries, mapped history)"),
    ):
        axis.plot(t, [s.get(name, 0) for s in samples], label=label)
    axis.axvline(result["serve"]["ready_s"], color="grey", linestyle=":", label="ready")
    axis.set_xlabel("seconds since start")
    axis.set_ylabel("MB")
    axis.set_title("feedrank serve at course scale: memory")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--views", type=int, default=COURSE["views"], help="views to generate")
    parser.add_argument("--skip-build", action="store_true", help="serve the cached build")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="a tiny world, 2 s per level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else {**COURSE, "views": args.views}
    path = world(args.cache, size)
    repository = args.cache / f"{path.name}-repository"
    built = None
    if not args.skip_build or not (repository / "router.toml").exists():
        built = build(path, repository, iterations=30 if args.quick else None)
    levels = [int(c) for c in args.concurrency.split(",")]
    duration = 2.0 if args.quick else args.duration
    result = {
        "machine": machine(),
        "world": str(path),
        "world_size": size,
        "feed_rows": json.loads((path / "world.json").read_text())["feed_rows"],
        "build": built,
        "serve": serve(path, repository, levels, duration, args.users),
    }
    save(result, args.out, _name(args), markdown(result), plot)
    return result


def _name(args: argparse.Namespace) -> str:
    if args.quick:
        return "course_scale-quick"
    return "course_scale" + ("" if args.views == COURSE["views"] else f"-{args.views}")


if __name__ == "__main__":
    main()
