"""Ranking-kernel benchmark: one request's scoring of every candidate post, three ways.

- catboost: CatBoost's native `predict` (raw scores) on the request's full feature matrix;
- plain_onnx: CatBoost's own ONNX export (TreeEnsemble) in onnxruntime on the same matrix;
- fastpath: the fast-path graph (export/fastpath.py) in onnxruntime, fed the request row and the
  per-group pair values the matrix was made of.

Each repetition draws a new request and times the scorers back to back in alternating order
(interleaved pairs), with 1 and 2 threads; the ratio is taken per pair. Scores are checked on
every repetition (max |Δ raw| and identical top-50). The model is a real CatBoost model trained
on a seeded synthetic problem shaped like feedrank's (export/fastpath_synthetic.py).

    .venv/bin/python benchmarks/ranking_kernel.py            # 7,023 posts, 1,000 trees depth 6
    .venv/bin/python benchmarks/ranking_kernel.py --quick    # seconds: proves the script works

Writes benchmarks/results/ranking_kernel{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

RESULTS = Path(__file__).parent / "results"
SCORERS = ("catboost", "fastpath", "plain_onnx")
TOP_K = 50


def machine() -> dict:
    import catboost
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "catboost": catboost.__version__,
            "onnxruntime": onnxruntime.__version__, "git_commit": commit,
            "load_average": os.getloadavg()}


def scorers(problem, model_path: Path, threads: int, **build_options):
    """name -> (callable(request, pair, matrix) -> raw scores), and the fast path's build facts."""
    import onnxruntime as ort
    from feedrank.export.fastpath import Trees
    from feedrank.server.fastpath import FastRanker

    rss = psutil.Process().memory_info().rss
    ranker = FastRanker(Trees.from_catboost(problem.model), problem.post_matrix,
                        problem.partition, problem.post_group, problem.n_groups,
                        threads=threads, **build_options)
    built = {"build_seconds": ranker.build_seconds, "table_mb": ranker.table_bytes / 2**20,
             "rss_growth_mb": (psutil.Process().memory_info().rss - rss) / 2**20,
             "tree_groups": len(ranker.fastpath.groups)}
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    plain = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def plain_raw(request, pair, matrix):
        (p,) = plain.run(["probabilities"], {"features": matrix})
        p1 = np.clip(p[:, 1].astype(np.float64), 1e-12, 1 - 1e-12)
        return np.log(p1 / (1 - p1))

    return {"catboost": lambda r, q, m: problem.model.predict(
                m, prediction_type="RawFormulaVal", thread_count=threads),
            "fastpath": lambda r, q, m: ranker.scores(r, q),
            "plain_onnx": plain_raw}, built


def run_threads(problem, model_path: Path, threads: int, repetitions: int, plain_every: int,
                **build_options) -> dict:
    funcs, built = scorers(problem, model_path, threads, **build_options)
    times = {name: [] for name in SCORERS}
    worst_diff, top_k_equal = 0.0, True
    for rep in range(repetitions):
        request, pair = problem.request()
        matrix = problem.matrix(request, pair)
        names = ["catboost", "fastpath"] if rep % 2 == 0 else ["fastpath", "catboost"]
        if rep % plain_every == 0:
            names.append("plain_onnx")
        scores = {}
        for name in names:
            started = time.perf_counter()
            scores[name] = funcs[name](request, pair, matrix)
            times[name].append((time.perf_counter() - started) * 1e3)
        worst_diff = max(worst_diff, float(np.abs(scores["fastpath"] - scores["catboost"]).max()))
        top_k_equal &= bool(np.array_equal(top(scores["fastpath"]), top(scores["catboost"])))
    ratios = np.array(times["catboost"]) / np.array(times["fastpath"])
    return {"threads": threads, **built, "times_ms": times,
            "summary": {name: summary(t) for name, t in times.items()},
            "ratio_catboost_over_fastpath": summary(ratios),
            "ratio_plain_onnx_over_fastpath": float(np.median(times["plain_onnx"])
                                                    / np.median(times["fastpath"])),
            "max_abs_raw_diff_vs_catboost": worst_diff, "top_k_identical": top_k_equal}


def top(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:TOP_K]


def summary(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90)), "n": int(v.size)}


def markdown(result: dict) -> str:
    p = result["problem"]
    lines = [f"Ranking kernel: {p['posts']:,} posts, {p['iterations']:,} trees of depth "
             f"{p['depth']}, {p['features']} features; {result['machine']['cpu']}, "
             f"commit {result['machine']['git_commit'][:10]}", "",
             "| threads | scorer | median ms | p10–p90 ms | CatBoost ÷ scorer: median (p10–p90) of pairs |",
             "|---|---|---|---|---|"]
    for run in result["runs"]:
        for name in SCORERS:
            s = run["summary"][name]
            ratio = (run["ratio_catboost_over_fastpath"] if name == "fastpath" else None)
            of_medians = run["summary"]["catboost"]["median"] / s["median"]
            ratio_text = (f"{ratio['median']:.2f}× ({ratio['p10']:.2f}–{ratio['p90']:.2f})"
                          if ratio else "reference" if name == "catboost"
                          else f"{of_medians:.2f}× (of medians)")
            lines.append(f"| {run['threads']} | {name} | {s['median']:.2f} | "
                         f"{s['p10']:.2f}–{s['p90']:.2f} | {ratio_text} |")
    lines += ["", "| threads | fast-path build s | tables MB | RSS growth MB | tree groups | "
              "max abs Δ raw vs CatBoost | top-50 identical |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['build_seconds']:.1f} | {r['table_mb']:.0f} | "
              f"{r['rss_growth_mb']:.0f} | {r['tree_groups']} | "
              f"{r['max_abs_raw_diff_vs_catboost']:.1e} | {r['top_k_identical']} |"
              for r in result["runs"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result["runs"]), figsize=(5 * len(result["runs"]), 4),
                             sharey=True, squeeze=False)
    for ax, run in zip(axes[0], result["runs"]):
        ax.boxplot([run["times_ms"][n] for n in SCORERS], tick_labels=list(SCORERS), whis=(5, 95),
                   showfliers=False)
        ax.set_yscale("log")
        ax.set_title(f"{run['threads']} thread(s): CatBoost ÷ fast path "
                     f"{run['ratio_catboost_over_fastpath']['median']:.2f}×")
        ax.set_ylabel("ms per request (all candidates)")
        ax.grid(True, which="both", axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny model")
    parser.add_argument("--posts", type=int, default=7023)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--groups", type=int, default=16, help="post groups of pair columns")
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--plain-every", type=int, default=10,
                        help="time the (slow) plain ONNX export on every n-th repetition")
    parser.add_argument("--merge-cost", type=float, default=64.0)
    parser.add_argument("--max-table-mb", type=int, default=384)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.posts, args.iterations, args.repetitions, args.plain_every = 500, 60, 10, 2

    from feedrank.export.fastpath_synthetic import synthetic_problem
    from feedrank.export.onnx_export import export_onnx

    problem = synthetic_problem(n_posts=args.posts, n_groups=args.groups,
                                iterations=args.iterations, depth=args.depth,
                                train_rows=4000 if args.quick else 40_000)
    result = {"machine": machine(), "problem": {
        "posts": args.posts, "iterations": args.iterations, "depth": args.depth,
        "features": problem.post_matrix.shape[1], "post_groups": args.groups,
        "kinds": {k: int(len(problem.partition.columns(k))) for k in ("request", "post", "pair")},
        "repetitions": args.repetitions, "merge_cost": args.merge_cost,
        "max_table_mb": args.max_table_mb}, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.onnx"
        export_onnx(problem.model, model_path, name="synthetic")
        for threads in (1, 2):
            result["runs"].append(run_threads(problem, model_path, threads, args.repetitions,
                                              args.plain_every, merge_cost=args.merge_cost,
                                              max_table_bytes=args.max_table_mb << 20))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("ranking_kernel-quick" if args.quick else "ranking_kernel")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    stem.with_suffix(".md").write_text(markdown(result))
    plot(result, stem.with_suffix(".png"))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
