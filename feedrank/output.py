"""Where results go: stdout, as rich tables that fit a terminal, and whole in a pipe or file
(rich would otherwise assume 80 columns and cut cells short)."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 200


def results_console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
