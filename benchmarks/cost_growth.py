"""How ranking cost grows: time to score one request's candidates against the number of
candidate posts and the number of trees, for each scorer (CatBoost native `predict`, the plain
CatBoost-exported ONNX graph in onnxruntime, and the fast path), one thread each.

One real CatBoost model of depth 6 is trained on the seeded synthetic problem of feedrank's
shape (benchmarks/fastpath_problem.py) with the largest tree count; smaller tree counts are its
first trees (`shrink`), so every point ranks with the same model family. Larger catalogues
resample the problem's posts. The fitted log-log slope says how each scorer scales.

    .venv/bin/python benchmarks/cost_growth.py          # posts 1k..200k, trees 100..2000
    .venv/bin/python benchmarks/cost_growth.py --quick    # seconds: proves the script works

Writes benchmarks/results/cost_growth{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from record import machine, save

RESULTS = Path(__file__).parent / "results"
SCORERS = ("catboost", "plain_onnx", "fastpath")
FULL = {
    "posts": [1_000, 7_023, 50_000, 200_000],
    "posts_trees": 300,
    "trees": [100, 500, 1_000, 2_000],
    "trees_posts": 7_023,
    "repetitions": 5,
}
QUICK = {
    "posts": [500, 2_000],
    "posts_trees": 50,
    "trees": [20, 50],
    "trees_posts": 500,
    "repetitions": 2,
}


class Catalogue:
    """A problem's posts resampled to `n_posts`, and requests drawn against them."""

    def __init__(self, problem, n_posts: int, rng: np.random.Generator) -> None:
        rows = (
            np.arange(n_posts)
            if n_posts <= len(problem.post_matrix)
            else rng.integers(0, len(problem.post_matrix), n_posts)
        )[:n_posts]
        self.problem, self.post_matrix = problem, problem.post_matrix[rows]
        self.post_group = problem.post_group[rows]

    def request(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        request, pair = self.problem.request()
        x = self.post_matrix.copy()
        x[:, self.problem.partition.columns("request")] = request
        x[:, self.problem.partition.columns("pair")] = pair[self.post_group]
        return request, pair, x


def measure(model, catalogue: Catalogue, repetitions: int, folder: Path) -> dict:
    """Median milliseconds per scorer for one (model, catalogue), scorers interleaved."""
    import onnxruntime as ort

    from feedrank.export.onnx_export import export_onnx
    from feedrank.server.fastpath import FastRanker
    from feedrank.server.fastpath_graph import Trees

    problem = catalogue.problem
    onnx_path = folder / f"model-{model.tree_count_}.onnx"
    export_onnx(model, onnx_path, name="growth")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    plain = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ranker = FastRanker(
        Trees.from_catboost(model),
        catalogue.post_matrix,
        problem.partition,
        catalogue.post_group,
        problem.n_groups,
        threads=1,
    )
    run = {
        "catboost": lambda r, p, x: model.predict(
            x, prediction_type="RawFormulaVal", thread_count=1
        ),
        "plain_onnx": lambda r, p, x: plain.run(["probabilities"], {"features": x}),
        "fastpath": lambda r, p, x: ranker.scores(r, p),
    }
    times = {name: [] for name in SCORERS}
    for rep in range(repetitions):
        request, pair, x = catalogue.request()
        for name in SCORERS[rep % 3 :] + SCORERS[: rep % 3]:
            started = time.perf_counter()
            run[name](request, pair, x)
            times[name].append((time.perf_counter() - started) * 1e3)
    return {
        "posts": len(catalogue.post_matrix),
        "trees": int(model.tree_count_),
        "fastpath_build_s": ranker.build_seconds,
        "fastpath_table_mb": ranker.table_bytes / 2**20,
        "median_ms": {name: float(np.median(t)) for name, t in times.items()},
    }


def slope(points: list[dict], axis: str, scorer: str) -> float:
    x = np.log([p[axis] for p in points])
    y = np.log([p["median_ms"][scorer] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def markdown(result: dict) -> str:
    lines = [
        f"How ranking cost grows (one thread; {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores; commit {result['machine']['git_commit'][:10]})"
    ]
    for axis, fixed in (("posts", "trees"), ("trees", "posts")):
        points = result[axis]
        lines += [
            "",
            f"| {axis} ({fixed} = {points[0][fixed]:,}) | "
            + " | ".join(f"{s} ms" for s in SCORERS)
            + " | fast-path table MB |",
            "|---" * (len(SCORERS) + 2) + "|",
        ]
        lines += [
            f"| {p[axis]:,} | "
            + " | ".join(f"{p['median_ms'][s]:.2f}" for s in SCORERS)
            + f" | {p['fastpath_table_mb']:.0f} |"
            for p in points
        ]
        lines.append(
            "| log-log slope | "
            + " | ".join(f"{result['slopes'][axis][s]:.2f}" for s in SCORERS)
            + " | |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis_name, axis in zip(("posts", "trees"), axes):
        points = result[axis_name]
        for scorer in SCORERS:
            axis.plot(
                [p[axis_name] for p in points],
                [p["median_ms"][scorer] for p in points],
                "o-",
                label=f"{scorer} (slope {result['slopes'][axis_name][scorer]:.2f})",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"candidate {axis_name}" if axis_name == "posts" else "trees (depth 6)")
        axis.set_ylabel("ms per request (median)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    from fastpath_problem import synthetic_problem

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    largest = max(plan["trees"] + [plan["posts_trees"]])
    problem = synthetic_problem(
        n_posts=plan["trees_posts"],
        iterations=largest,
        depth=6,
        train_rows=4_000 if args.quick else 40_000,
    )
    rng = np.random.default_rng(0)
    result: dict = {"machine": machine(), "plan": plan}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {}
        for trees in sorted(set(plan["trees"] + [plan["posts_trees"]])):
            models[trees] = problem.model.copy()
            models[trees].shrink(ntree_end=trees)
        result["posts"] = [
            measure(
                models[plan["posts_trees"]], Catalogue(problem, n, rng), plan["repetitions"], folder
            )
            for n in plan["posts"]
        ]
        catalogue = Catalogue(problem, plan["trees_posts"], rng)
        result["trees"] = [
            measure(models[t], catalogue, plan["repetitions"], folder) for t in plan["trees"]
        ]
    result["slopes"] = {
        axis: {s: slope(result[axis], axis, s) for s in SCORERS} for axis in ("posts", "trees")
    }
    save(result, args.out, "cost_growth" + ("-quick" if args.quick else ""), markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
