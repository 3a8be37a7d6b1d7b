"""`feedrank ab report` and `feedrank ab simulate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from feedrank.output import results_console


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
    ab = subparsers.add_parser(
        "ab",
        help="A/B analysis of the exposure log and its simulation",
        epilog="example:\n  feedrank ab report --log data/exposure_log --world data/world",
    )
    commands = ab.add_subparsers(dest="ab_command", required=True, metavar="COMMAND")

    report = commands.add_parser(
        "report",
        help="per-group metrics, differences, split check",
        description="Join the exposure log with the likes that "
        "followed each exposure and compare the groups per user.",
        epilog="example:\n  feedrank ab report --log "
        "data/exposure_log --world data/world --repository "
        "model_repository",
    )
    report.add_argument(
        "--log",
        type=Path,
        nargs="+",
        required=True,
        help="exposure log folder(s): one that every replica writes to, or one per replica, "
        "read together",
    )
    report.add_argument(
        "--world",
        type=Path,
        help="world: likes from its feed_data (unless --events), and always the "
        "CUPED covariate (users' like rates before the experiment)",
    )
    report.add_argument(
        "--events",
        type=Path,
        nargs="+",
        help="feed events used instead of the world's feed_data: a folder of "
        "Parquet files (ab simulate's OUT/events) or a server's log folder "
        "(its events-*.jsonl, what clients posted to /feed/events); several: read together",
    )
    _analysis_options(report)
    report.add_argument(
        "--out",
        type=Path,
        default=Path("report"),
        help="report folder "
        "(with --repository: prediction.json, the A/B against the offline "
        "replay feedrank evaluate saved for the served versions)",
    )
    report.set_defaults(handler=report_command)

    simulate = commands.add_parser(
        "simulate",
        help="simulated users against the real server",
        description="Start feedrank serve, let simulated users "
        "request feeds over the world's last days, draw their likes "
        "from the ground truth, then report.",
        epilog="example:\n  feedrank ab simulate --world data/world "
        "--repository model_repository --users 2000 --days 3",
    )
    simulate.add_argument("--world", type=Path, required=True, help="generated world")
    simulate.add_argument("--repository", type=Path, required=True, help="model repository")
    simulate.add_argument(
        "--users",
        type=int,
        default=20000,
        help="simulated users (on the default world 20000 make about "
        "216,000 requests, 11-40 min on 2 cores, hit rate@5 MDE about ±0.008)",
    )
    simulate.add_argument("--days", type=int, default=7, help="the world's last D days")
    simulate.add_argument("--seed", type=int, default=0, help="simulation seed")
    simulate.add_argument(
        "--requests-per-day", type=float, default=1.5, help="mean feed requests per user and day"
    )
    simulate.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    simulate.add_argument(
        "--aa", action="store_true", help="A/A: both groups on the control group's model version"
    )
    simulate.add_argument(
        "--drop-share",
        type=float,
        default=0.0,
        help="broken split: drop this share of the test group's users from "
        "the log (a logging bug), so the SRM check must fire",
    )
    simulate.add_argument(
        "--new-posts-per-day",
        type=int,
        default=0,
        help="publish N of the posts the world held back on each simulated day (POST /posts), "
        "and report fresh posts' share of exposures and likes per group",
    )
    simulate.add_argument("--window", default="1h", help="like attribution window")
    simulate.add_argument(
        "--out",
        type=Path,
        default=Path("data/ab-simulation"),
        help="folder for log/, events/, report/",
    )
    simulate.set_defaults(handler=simulate_command)


def _analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", default="1h", help="like attribution window (1h, 30m, 90s)")
    parser.add_argument("--split", help="configured split, e.g. control=50,test=50")
    parser.add_argument(
        "--repository", type=Path, help="read the configured split from REPOSITORY/router.toml"
    )
    parser.add_argument("--control", default="control", help="the control group's name")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def report_command(args: argparse.Namespace) -> int:

    from feedrank.ab.analysis import run_report
    from feedrank.ab.attribution import like_files, parse_window
    from feedrank.ab.prediction import report_prediction
    from feedrank.ab.split import parse_split, router_shares

    shares = (
        parse_split(args.split)
        if args.split
        else router_shares(args.repository / "router.toml")
        if args.repository
        else None
    )
    console = results_console()
    report = run_report(
        args.log,
        like_files(args.world, args.events),
        window_s=parse_window(args.window),
        shares=shares,
        out=args.out,
        control=args.control,
        seed=args.seed,
        console=console,
        covariate_world=args.world,
    )
    if args.repository and args.control == "control":
        report_prediction(args.repository, report, None, args.out, console)
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    from feedrank.ab.attribution import parse_window
    from feedrank.ab.simulate import Simulation

    Simulation(
        world=args.world,
        repository=args.repository,
        out=args.out,
        users=args.users,
        days=args.days,
        seed=args.seed,
        requests_per_day=args.requests_per_day,
        concurrency=args.concurrency,
        aa=args.aa,
        drop_share=args.drop_share,
        new_posts_per_day=args.new_posts_per_day,
        window_s=parse_window(args.window),
    ).run()
    return 0
