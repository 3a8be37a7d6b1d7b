"""Progress bars for long work, one look across every stage.

Bars go to stderr, so results on stdout stay clean in a pipe; they show when stderr is a
terminal, or when asked (`feedrank --progress`, or FEEDRANK_PROGRESS=1).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ASK = "FEEDRANK_PROGRESS"


def progress_bar(*, transient: bool = False) -> Progress:
    shown = sys.stderr.isatty() or os.environ.get(ASK) == "1"
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
        console=Console(stderr=True),
        disable=not shown,
    )
