"""The `feedrank` command: one entry point, a sub-command per stage of the data flow.

Each stage owns its sub-commands in its package's `commands` module (a `register(subparsers)`
function); this module only assembles them and turns user errors into a clear message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from feedrank.errors import FeedrankError

STAGES = ("feedrank.world.commands", "feedrank.export.commands",
          "feedrank.server.commands", "feedrank.ab.commands")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="feedrank", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in STAGES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FeedrankError as error:
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
