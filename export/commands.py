"""`feedrank build` and `feedrank evaluate`."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np

from feedrank.errors import FeedrankError
from feedrank.output import results_console
from feedrank.settings import default, load_settings
from feedrank.world.layout import WorldLayout


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
    build = subparsers.add_parser(
        "build", help="features, control and test models, ONNX (parity-checked), repository",
        epilog="example:\n  feedrank build --world data/world --repository model_repository")
    add_locations(build)
    build.add_argument("--iterations", type=int,
                       help=f"CatBoost trees (default: {default('build.iterations')})")
    build.add_argument("--depth", type=int,
                       help=f"CatBoost tree depth (default: {default('build.depth')})")
    build.add_argument("--threads", type=int, help="CatBoost and onnxruntime threads "
                       f"(default: {default('build.threads')})")
    build.set_defaults(handler=run_build)

    evaluate = subparsers.add_parser(
        "evaluate", help="hit rate@5 of the latest published models on the held-out window",
        epilog="example:\n  feedrank evaluate --world data/world --repository "
               "model_repository --requests 2000")
    add_locations(evaluate)
    evaluate.add_argument("--requests", type=int, default=2000,
                          help="logged sessions sampled from the held-out window")
    evaluate.add_argument("--horizon", type=float, default=1.0,
                          help="hours after a request in which a like is a hit")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed")
    evaluate.add_argument("--replay-users", type=int, default=1000,
                          help="users of the offline A/B replay over the evaluation window, "
                               "the traffic of ab simulate with the same --seed (0 skips it)")
    evaluate.add_argument("--force", action="store_true",
                          help="evaluate again even if the saved evaluation has the same inputs")
    evaluate.set_defaults(handler=run_evaluate)


def add_locations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", type=Path,
                        help=f"world directory (default: {default('world')})")
    parser.add_argument("--repository", type=Path,
                        help=f"model repository (default: {default('repository')})")


def run_build(args: argparse.Namespace) -> int:
    settings = load_settings(world=args.world, repository=args.repository)
    build = settings.build.model_copy(update={k: v for k, v in (
        ("iterations", args.iterations), ("depth", args.depth), ("threads", args.threads))
        if v is not None})
    if build.iterations < 1 or not 1 <= build.depth <= 16:
        raise FeedrankError(f"--iterations must be ≥ 1 and --depth in 1..16, got "
                            f"{build.iterations} and {build.depth}")
    world = require_world(settings.world)
    # heavy imports (CatBoost, the features stage) only once the arguments are known to be good
    from feedrank.export.build import Builder
    from feedrank.export.training import TrainParams

    params = TrainParams(build.iterations, build.depth, build.learning_rate, build.seed,
                         build.threads)
    versions = Builder(world, settings.repository, params).run()
    results_console().print(", ".join(f"{name} v{v}" for name, v in versions.items())
                    + f" in {settings.repository}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from feedrank.export.publish import latest_metadata
    from feedrank.export.windows import Windows

    settings = load_settings(world=args.world, repository=args.repository)
    if args.requests < 1 or args.horizon <= 0 or args.replay_users < 0 or args.replay_users == 1:
        raise FeedrankError(f"--requests must be ≥ 1, --horizon > 0 and --replay-users 0 or "
                            f"≥ 2, got {args.requests}, {args.horizon} and {args.replay_users}")
    models, windows, fingerprints = {}, set(), {}
    for name in ("control", "test"):
        latest = latest_metadata(settings.repository / name)
        if latest is None:
            raise FeedrankError(f"{settings.repository / name}: no published version; "
                                "run `feedrank build`")
        models[name] = (latest[0], settings.repository / name / str(latest[0]))
        windows.add(Windows.from_dict(latest[1]["windows"]))
        fingerprints[name] = latest[1].get("build_fingerprint")
    if len(windows) != 1:
        raise FeedrankError("the latest control and test versions were trained on different "
                            "windows; rebuild both with `feedrank build`")
    world = require_world(settings.world)
    from feedrank.export.evaluate import evaluate
    from feedrank.export.replay import Replay, replay
    from feedrank.export.report import (
        evaluation_table,
        replay_table,
        save_evaluation,
        saved_evaluation,
    )

    window, console = windows.pop(), results_console()
    inputs = {"models": fingerprints, "requests": args.requests, "horizon": args.horizon,
              "seed": args.seed, "replay_users": args.replay_users}
    saved = saved_evaluation(models["test"][1])
    if saved is not None and saved.inputs == inputs and not args.force:
        console.print(f"inputs unchanged: the saved evaluation ({models['test'][1]}/"
                      "evaluation.json; --force evaluates again)")
        console.print(evaluation_table(saved))
        if saved.replay:
            console.print(replay_table(Replay(**saved.replay)))
        return 0
    result = evaluate(world, models, window, requests=args.requests, seed=args.seed,
                      threads=settings.build.threads, horizon=timedelta(hours=args.horizon))
    result = dataclasses.replace(result, inputs=inputs)
    console.print(evaluation_table(result))
    if args.replay_users and not WorldLayout(world).ground_truth.exists():
        console.print("no offline A/B replay: it draws likes from a generated world's ground "
                      "truth, which an imported world has not")
    elif args.replay_users:
        days = np.arange(np.datetime64(window.eval_start, "D"),
                         np.datetime64(window.eval_end, "D"))
        predicted = replay(world, {name: folder for name, (_, folder) in models.items()}, days,
                           users=args.replay_users, seed=args.seed,
                           threads=settings.build.threads)
        console.print(replay_table(predicted))
        result = dataclasses.replace(result, replay=predicted.as_dict())
    save_evaluation(result, [folder for _, folder in models.values()])
    return 0


def require_world(world: Path) -> Path:
    if not (world / "world.json").is_file():
        raise FeedrankError(f"{world}: not a world (no world.json); "
                            f"make one with `feedrank world generate --out {world}`")
    return world
