"""Build a world in a hidden sibling directory and rename it into place only when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feedrank.errors import FeedrankError


@contextmanager
def staged(out: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty directory to fill; on success it replaces `out`, on failure it vanishes."""
    out = Path(out)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise FeedrankError(f"{out} already exists and is not empty (use --force to replace it)")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
