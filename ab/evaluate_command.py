"""`feedrank evaluate`: the latest published versions on the held-out window, and the offline
A/B replay of the experiment between them."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta

import numpy as np

from feedrank.errors import FeedrankError
from feedrank.export.commands import add_locations, require_world
from feedrank.output import results_console
from feedrank.settings import load_settings
from feedrank.world.layout import WorldLayout


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `feedrank evaluate` to the `feedrank` parser."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="hit rate@5 of the latest published models on the held-out window",
        epilog="example:\n  feedrank evaluate --world data/world --repository "
        "model_repository --requests 2000",
    )
    add_locations(evaluate)
    evaluate.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="logged sessions sampled from the held-out window",
    )
    evaluate.add_argument(
        "--horizon", type=float, default=1.0, help="hours after a request in which a like is a hit"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed")
    evaluate.add_argument(
        "--replay-users",
        type=int,
        default=1000,
        help="users of the offline A/B replay over the evaluation window, "
        "the traffic of ab simulate with the same --seed (0 skips it)",
    )
    evaluate.add_argument(
        "--force",
        action="store_true",
        help="evaluate again even if the saved evaluation has the same inputs",
    )
    evaluate.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from feedrank.export.publish import latest_metadata
    from feedrank.export.windows import Windows

    settings = load_settings(world=args.world, repository=args.repository)
    if args.requests < 1 or args.horizon <= 0 or args.replay_users < 0 or args.replay_users == 1:
        raise FeedrankError(
            f"--requests must be ≥ 1, --horizon > 0 and --replay-users 0 or "
            f"≥ 2, got {args.requests}, {args.horizon} and {args.replay_users}"
        )
    models, windows, fingerprints = {}, set(), {}
    for name in ("control", "test"):
        latest = latest_metadata(settings.repository / name)
        if latest is None:
            raise FeedrankError(
                f"{settings.repository / name}: no published version; run `feedrank build`"
            )
        models[name] = (latest[0], settings.repository / name / str(latest[0]))
        windows.add(Windows.from_dict(latest[1]["windows"]))
        fingerprints[name] = latest[1].get("build_fingerprint")
    if len(windows) != 1:
        raise FeedrankError(
            "the latest control and test versions were trained on different "
            "windows; rebuild both with `feedrank build`"
        )
    world = require_world(settings.world)
    from feedrank.ab.evaluation import evaluate
    from feedrank.ab.offline_report import (
        evaluation_table,
        replay_table,
        save_evaluation,
        saved_evaluation,
    )
    from feedrank.ab.replay import REPLAY_METRICS, Replay, replay

    window, console = windows.pop(), results_console()
    inputs = {
        "models": fingerprints,
        "requests": args.requests,
        "horizon": args.horizon,
        "seed": args.seed,
        "replay_users": args.replay_users,
        # an evaluation saved before a metric existed is made again, not shown without it
        "replay_metrics": sorted(REPLAY_METRICS),
    }
    saved = saved_evaluation(models["test"][1])
    if saved is not None and saved.inputs == inputs and not args.force:
        console.print(
            f"inputs unchanged: the saved evaluation ({models['test'][1]}/"
            "evaluation.json; --force evaluates again)"
        )
        console.print(evaluation_table(saved))
        if saved.replay:
            console.print(replay_table(Replay(**saved.replay)))
        return 0
    result = evaluate(
        world,
        models,
        window,
        requests=args.requests,
        seed=args.seed,
        threads=settings.build.threads,
        horizon=timedelta(hours=args.horizon),
    )
    result = dataclasses.replace(result, inputs=inputs)
    console.print(evaluation_table(result))
    if args.replay_users and not WorldLayout(world).ground_truth.exists():
        console.print(
            "no offline A/B replay: it draws likes from a generated world's ground "
            "truth, which an imported world has not"
        )
    elif args.replay_users:
        days = np.arange(np.datetime64(window.eval_start, "D"), np.datetime64(window.eval_end, "D"))
        predicted = replay(
            world,
            {name: folder for name, (_, folder) in models.items()},
            days,
            users=args.replay_users,
            seed=args.seed,
            threads=settings.build.threads,
        )
        console.print(replay_table(predicted))
        result = dataclasses.replace(result, replay=predicted.as_dict())
    save_evaluation(result, [folder for _, folder in models.values()])
    return 0
