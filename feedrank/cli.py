"""The feedrank command: one entry point, a sub-command per stage of the data flow.

Each stage owns its sub-commands in its package's command modules (each a `register(subparsers)`
function), listed here in the order of the data flow, which is the order `--help` shows; `serve`
composes the server with the A/B stage's pages (feedrank/serve.py). This module only assembles
them and turns user errors into a clear message.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from feedrank.errors import FeedrankError
from feedrank.progress import ASK

STAGES = (
    "feedrank.world.commands",
    "feedrank.export.commands",
    "feedrank.ab.evaluate_command",
    "feedrank.serve",
    "feedrank.ab.commands",
)
DESCRIPTION = """feedrank: a feed recommendation service for A/B experiments.
A synthetic or imported world, features, control and test models exported to ONNX,
a model repository, the feed server, and the A/B analysis."""
EXAMPLES = """examples:
  feedrank world generate --out data/world
  feedrank build --world data/world --repository model_repository
  feedrank serve --world data/world --repository model_repository
  feedrank ab report --log data/exposure_log --world data/world"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option's default shown when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        if (
            "%(default)" not in help
            and action.default is not None
            and action.default is not False
            and action.default != argparse.SUPPRESS
            and action.option_strings
            and action.nargs != 0
        ):
            help += " (default: %(default)s)"
        return help


class Parser(argparse.ArgumentParser):
    """Every feedrank parser, sub-commands included (argparse makes them of the same class)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog="feedrank", description=DESCRIPTION, epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"feedrank {version('feedrank')}")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars on stderr even when it is not a terminal",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in STAGES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.progress:
        os.environ[ASK] = "1"
    try:
        return int(args.handler(args) or 0)
    except FeedrankError as error:
        # one paragraph, never wrapped: a suggested command stays copyable
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
