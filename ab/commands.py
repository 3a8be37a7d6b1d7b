"""Sub-commands of this stage (placeholder until the stage lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this stage's sub-commands to the `feedrank` parser."""
