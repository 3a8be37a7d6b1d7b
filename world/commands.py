"""`feedrank world generate | import | describe | truth`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.table import Table

from feedrank.errors import FeedrankError
from feedrank.output import results_console
from feedrank.world import catalog


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
    world = subparsers.add_parser(
        "world",
        help="make, import and inspect a world",
        epilog="example:\n  feedrank world generate --out data/world",
    )
    commands = world.add_subparsers(dest="world_command", required=True, metavar="COMMAND")

    from feedrank.world.generate import DEFAULT_VIEWS

    gen = commands.add_parser(
        "generate",
        help="generate a seeded synthetic world",
        epilog="example:\n  feedrank world generate --out data/world "
        "--users 3000 --posts 400 --views 300000 --seed 7",
    )
    gen.add_argument("--out", type=Path, required=True, help="world directory to create")
    gen.add_argument("--users", type=int, default=catalog.COURSE_USERS, help="users")
    gen.add_argument("--posts", type=int, default=catalog.COURSE_POSTS, help="posts")
    gen.add_argument(
        "--views",
        type=int,
        default=DEFAULT_VIEWS,
        help="feed views to simulate; likes add about 12%%",
    )
    gen.add_argument(
        "--held-back-posts",
        type=int,
        help="posts written but not published, which ab simulate --new-posts-per-day "
        "publishes during its days (default: a tenth of --posts)",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed: same seed, same world")
    gen.add_argument("--force", action="store_true", help="replace an existing world")
    gen.set_defaults(handler=_generate)

    imp = commands.add_parser(
        "import",
        help="import course tables from CSV/Parquet files or PostgreSQL",
        description="Sources: --source FOLDER (user_data.*, post_text_df.*, feed_data.* or "
        "feed_data/), or --users/--posts/--feed files, or --dsn for PostgreSQL.",
        epilog="examples:\n  feedrank world import --source ../tables --out data/real\n"
        "  feedrank world import --dsn postgresql://user@host/db --out data/real",
    )
    imp.add_argument("--out", type=Path, required=True, help="world directory to create")
    imp.add_argument("--source", type=Path, help="folder holding the three tables")
    imp.add_argument("--users", type=Path, help="user_data file (.csv or .parquet)")
    imp.add_argument("--posts", type=Path, help="post_text_df file")
    imp.add_argument("--feed", type=Path, nargs="+", help="feed_data file(s)")
    imp.add_argument(
        "--dsn", help="PostgreSQL connection string (postgresql://user@host:port/database)"
    )
    imp.add_argument("--force", action="store_true", help="replace an existing world")
    imp.set_defaults(handler=_import)

    describe = commands.add_parser(
        "describe",
        help="summary tables of a world",
        epilog="example:\n  feedrank world describe data/world",
    )
    describe.add_argument("world", type=Path, help="world directory")
    describe.set_defaults(handler=_describe)

    truth = commands.add_parser(
        "truth",
        help="true like probabilities of a generated world",
        epilog="example:\n  feedrank world truth data/world --user 201 "
        "--post 74 97 --time 2021-12-01T14:30:00",
    )
    truth.add_argument("world", type=Path, help="generated world directory")
    truth.add_argument("--user", type=int, required=True, help="user id")
    truth.add_argument("--post", type=int, nargs="+", required=True, help="post ids")
    truth.add_argument("--time", required=True, help="world time, e.g. 2021-12-01T20:30:00")
    truth.set_defaults(handler=_truth)


def _generate(args: argparse.Namespace) -> int:
    from feedrank.world.generate import generate_world

    generate_world(
        args.out,
        users=args.users,
        posts=args.posts,
        views=args.views,
        held_back=args.held_back_posts,
        seed=args.seed,
        force=args.force,
    )
    results_console().print(f"world written to {args.out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from feedrank.world.importer import Sources, dump_postgres, import_world

    files = (args.users, args.posts, args.feed)
    chosen = [bool(args.source), any(files), bool(args.dsn)]
    if sum(chosen) != 1 or (chosen[1] and not all(files)):
        raise FeedrankError(
            "give exactly one of --source FOLDER, --users F --posts F --feed F..., or --dsn DSN"
        )
    if args.dsn:
        with tempfile.TemporaryDirectory(dir=args.out.parent) as dump:
            manifest = import_world(args.out, dump_postgres(args.dsn, Path(dump)), force=args.force)
    else:
        sources = (
            Sources.from_folder(args.source)
            if args.source
            else Sources(args.users, args.posts, list(args.feed))
        )
        manifest = import_world(args.out, sources, force=args.force)
    results_console().print(
        f"imported {manifest['users']:,} users, {manifest['posts']:,} posts, "
        f"{manifest['feed_rows']:,} feed rows into {args.out}"
    )
    return 0


def _describe(args: argparse.Namespace) -> int:
    from feedrank.world.describe import render, summarize
    from feedrank.world.layout import WorldLayout

    render(summarize(WorldLayout(args.world)), results_console())
    return 0


def _truth(args: argparse.Namespace) -> int:
    from feedrank.world.ground_truth import GroundTruth

    try:
        at = np.datetime64(args.time, "us")
    except ValueError:
        raise FeedrankError(f"--time {args.time!r} is not a timestamp") from None
    truth = GroundTruth.load(args.world)
    probability = truth.like_probability(args.user, np.asarray(args.post), at)
    table = Table(title=f"P(like), user {args.user}, {np.datetime_as_string(at, unit='s')}")
    table.add_column("post_id", justify="right")
    table.add_column("probability", justify="right")
    for post, p in zip(args.post, probability):
        table.add_row(str(post), f"{p:.4f}")
    results_console().print(table)
    return 0
