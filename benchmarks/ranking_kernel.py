"""Ranking-kernel benchmark: one request's scoring of every candidate post, three ways.

- catboost: CatBoost's native `predict` (raw scores) on the request's full feature matrix;
- plain_onnx: CatBoost's own ONNX export (TreeEnsemble) in onnxruntime on the same matrix;
- fastpath: the fast-path graph (server/fastpath_graph.py) in onnxruntime, fed the request row
  and the per-group pair values the matrix was made of.

Each repetition draws a new request and times the scorers back to back in alternating order
(interleaved pairs), with 1 and 2 threads; the ratio is taken per pair. Scores are checked on
every repetition (max |Δ raw| and identical top-50). By default the model is a real CatBoost model
trained on a seeded synthetic problem shaped like feedrank's (benchmarks/fastpath_problem.py); with
--world/--repository, the published control and test models on their own features (ModelInputs;
the fast path is fed the same full matrix through `scores_for_matrix`).

    .venv/bin/python benchmarks/ranking_kernel.py            # 7,023 posts, 1,000 trees depth 6
    .venv/bin/python benchmarks/ranking_kernel.py --quick    # seconds: proves the script works
    .venv/bin/python benchmarks/ranking_kernel.py --world W --repository R   # the real models

Writes benchmarks/results/ranking_kernel{-models}{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from record import machine, save

RESULTS = Path(__file__).parent / "results"
SCORERS = ("catboost", "fastpath", "plain_onnx")
TOP_K = 50


@dataclass
class Case:
    """One model to rank with: CatBoost, its plain ONNX export, how to build the fast path and
    how to draw a request (the fast path's call and the full matrix the others score)."""

    name: str
    catboost: object
    onnx_path: Path
    build: Callable[[int], object]  # threads -> FastRanker
    draw: Callable[[], tuple[Callable[[object], np.ndarray], np.ndarray]]


def synthetic_case(args, folder: Path) -> Case:
    from feedrank.export.onnx_export import export_onnx
    from feedrank.server.fastpath import FastRanker
    from feedrank.server.fastpath_graph import Trees

    from fastpath_problem import synthetic_problem

    problem = synthetic_problem(
        n_posts=args.posts,
        n_groups=args.groups,
        iterations=args.iterations,
        depth=args.depth,
        train_rows=4000 if args.quick else 40_000,
    )
    export_onnx(problem.model, folder / "model.onnx", name="synthetic")
    trees = Trees.from_catboost(problem.model)

    def draw():
        request, pair = problem.request()
        return (lambda ranker: ranker.scores(request, pair)), problem.matrix(request, pair)

    return Case(
        "synthetic",
        problem.model,
        folder / "model.onnx",
        lambda threads: FastRanker(
            trees,
            problem.post_matrix,
            problem.partition,
            problem.post_group,
            problem.n_groups,
            threads=threads,
            **build_options(args),
        ),
        draw,
    )


def build_options(args) -> dict:
    """The fast path's build options the command line sets; the rest stay the server's."""
    table_mb = args.max_table_mb
    options = {"merge_cost": args.merge_cost, "max_table_bytes": table_mb and table_mb << 20}
    return {k: v for k, v in options.items() if v is not None}


def repository_cases(args) -> list[Case]:
    """Each model's version (`--version`) of a built repository over its world; requests are
    random users at random times of one hour of the snapshot's last day (the posts' recent
    activity is as of the hour: one fast path per hour)."""
    from catboost import CatBoost

    from feedrank.features.online import ModelInputs, OnlineFeatures
    from feedrank.server.fastpath import FastRanker

    online = OnlineFeatures.load(args.world)
    hour = (online.cutoff - np.timedelta64(6, "h")).astype("datetime64[h]").astype("datetime64[us]")
    rng = np.random.default_rng(0)
    cases = []
    for model in args.models:
        version_dir = args.repository / model / str(args.version)
        inputs = ModelInputs.from_version_dir(online, version_dir)
        snapshot = inputs.request(int(online.user_ids[0]), hour).snapshot

        def draw(inputs=inputs):
            at = min(hour + np.timedelta64(int(rng.integers(0, 3_600)), "s"), online.cutoff)
            matrix = inputs.matrix(int(rng.choice(online.user_ids)), at)
            return (lambda ranker: ranker.scores_for_matrix(matrix)), matrix

        cases.append(
            Case(
                model,
                CatBoost().load_model(str(version_dir / "model.cbm")),
                version_dir / "model.onnx",
                lambda threads, d=version_dir, s=snapshot: FastRanker.for_snapshot(
                    d,
                    s,
                    threads=threads,
                    **build_options(args),
                ),
                draw,
            )
        )
    return cases


def scorers(case: Case, threads: int):
    """name -> callable(fast call, matrix) -> raw scores, and the fast path's build facts."""
    import onnxruntime as ort

    rss = psutil.Process().memory_info().rss
    ranker = case.build(threads)
    built = {
        "build_seconds": ranker.build_seconds,
        "table_mb": ranker.table_bytes / 2**20,
        "rss_growth_mb": (psutil.Process().memory_info().rss - rss) / 2**20,
        "tree_groups": len(ranker.fastpath.groups),
        "dense_tree_groups": len(ranker.fastpath.dense_groups),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    plain = ort.InferenceSession(str(case.onnx_path), options, providers=["CPUExecutionProvider"])

    def plain_raw(fast, matrix):
        (p,) = plain.run(["probabilities"], {"features": matrix})
        p1 = np.clip(p[:, 1].astype(np.float64), 1e-12, 1 - 1e-12)
        return np.log(p1 / (1 - p1))

    return {
        "catboost": lambda fast, m: case.catboost.predict(
            m, prediction_type="RawFormulaVal", thread_count=threads
        ),
        "fastpath": lambda fast, m: fast(ranker),
        "plain_onnx": plain_raw,
    }, built


def run_threads(case: Case, threads: int, repetitions: int, plain_every: int) -> dict:
    funcs, built = scorers(case, threads)
    times = {name: [] for name in SCORERS}
    worst_diff, top_k_equal = 0.0, True
    for rep in range(repetitions):
        fast, matrix = case.draw()
        names = ["catboost", "fastpath"] if rep % 2 == 0 else ["fastpath", "catboost"]
        if rep % plain_every == 0:
            names.append("plain_onnx")
        scores = {}
        for name in names:
            started = time.perf_counter()
            scores[name] = funcs[name](fast, matrix)
            times[name].append((time.perf_counter() - started) * 1e3)
        worst_diff = max(worst_diff, float(np.abs(scores["fastpath"] - scores["catboost"]).max()))
        top_k_equal &= bool(np.array_equal(top(scores["fastpath"]), top(scores["catboost"])))
    ratios = np.array(times["catboost"]) / np.array(times["fastpath"])
    return {
        "case": case.name,
        "threads": threads,
        "posts": len(matrix),
        "features": matrix.shape[1],
        **built,
        "times_ms": times,
        "summary": {name: summary(t) for name, t in times.items()},
        "ratio_catboost_over_fastpath": summary(ratios),
        "ratio_plain_onnx_over_fastpath": float(
            np.median(times["plain_onnx"]) / np.median(times["fastpath"])
        ),
        "max_abs_raw_diff_vs_catboost": worst_diff,
        "top_k_identical": top_k_equal,
    }


def top(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:TOP_K]


def summary(values) -> dict:
    v = np.asarray(values, np.float64)
    return {
        "median": float(np.median(v)),
        "p10": float(np.percentile(v, 10)),
        "p90": float(np.percentile(v, 90)),
        "n": int(v.size),
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Ranking kernel ({result['setup']}); {m['cpu']}, {m['cores']} cores, load average "
        f"{m['load_average'][0]:.1f}, commit {m['git_commit'][:10]}",
        "",
        "| model | posts | threads | scorer | median ms | p10–p90 ms | "
        "CatBoost ÷ scorer: median (p10–p90) of pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for name in SCORERS:
            s = run["summary"][name]
            ratio = run["ratio_catboost_over_fastpath"] if name == "fastpath" else None
            of_medians = run["summary"]["catboost"]["median"] / s["median"]
            ratio_text = (
                f"{ratio['median']:.2f}× ({ratio['p10']:.2f}–{ratio['p90']:.2f})"
                if ratio
                else "reference"
                if name == "catboost"
                else f"{of_medians:.2f}× (of medians)"
            )
            lines.append(
                f"| {run['case']} | {run['posts']:,} | {run['threads']} | {name} | "
                f"{s['median']:.2f} | {s['p10']:.2f}–{s['p90']:.2f} | {ratio_text} |"
            )
    lines += [
        "",
        "| model | threads | fast-path build s | tables MB | RSS growth MB | tree groups "
        "(read post by post) | max abs Δ raw vs CatBoost | top-50 identical |",
        "|---" * 8 + "|",
    ]
    lines += [
        f"| {r['case']} | {r['threads']} | {r['build_seconds']:.1f} | {r['table_mb']:.0f} | "
        f"{r['rss_growth_mb']:.0f} | {r['tree_groups']} ({r['dense_tree_groups']}) | "
        f"{r['max_abs_raw_diff_vs_catboost']:.1e} | {r['top_k_identical']} |"
        for r in result["runs"]
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(result["runs"]), figsize=(5 * len(result["runs"]), 4), sharey=True, squeeze=False
    )
    for ax, run in zip(axes[0], result["runs"]):
        ax.boxplot(
            [run["times_ms"][n] for n in SCORERS],
            tick_labels=list(SCORERS),
            whis=(5, 95),
            showfliers=False,
        )
        ax.set_yscale("log")
        ax.set_title(
            f"{run['case']}, {run['threads']} thread(s): CatBoost ÷ fast path "
            f"{run['ratio_catboost_over_fastpath']['median']:.2f}×"
        )
        ax.set_ylabel("ms per request (all candidates)")
        ax.grid(True, which="both", axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny model")
    parser.add_argument("--world", type=Path, help="with --repository: the built models")
    parser.add_argument("--repository", type=Path)
    parser.add_argument("--models", nargs="+", default=["control", "test"])
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--posts", type=int, default=7023, help="synthetic problem")
    parser.add_argument("--iterations", type=int, default=1000, help="synthetic problem")
    parser.add_argument("--depth", type=int, default=6, help="synthetic problem")
    parser.add_argument("--groups", type=int, default=16, help="synthetic post groups")
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument(
        "--plain-every",
        type=int,
        default=10,
        help="time the (slow) plain ONNX export on every n-th repetition",
    )
    parser.add_argument("--merge-cost", type=float, help="default: the server's")
    parser.add_argument("--max-table-mb", type=int, help="default: the server's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.posts, args.iterations, args.repetitions, args.plain_every = 500, 60, 10, 2
    real = args.repository is not None
    if real and args.world is None:
        parser.error("--repository needs --world")
    result = {
        "machine": machine(),
        "setup": (
            f"{args.repository}, models {', '.join(args.models)} v{args.version}"
            if real
            else f"synthetic: {args.iterations:,} trees of depth {args.depth}, "
            f"{args.groups} post groups"
        ),
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        cases = repository_cases(args) if real else [synthetic_case(args, Path(tmp))]
        for case in cases:
            for threads in (1, 2):
                result["runs"].append(
                    run_threads(case, threads, args.repetitions, args.plain_every)
                )
    name = "ranking_kernel" + ("-models" if real else "") + ("-quick" if args.quick else "")
    save(result, args.out, name, markdown(result), plot)
    return result


if __name__ == "__main__":
    main()
