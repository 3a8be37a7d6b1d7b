"""Give the heap's free pages back to the operating system.

Loading builds large temporary arrays (sorting millions of events into indexes, compiling a
ranker's tables); glibc keeps the freed space in its arenas, where it counts in the resident size
of a process that will never need it again (about 270 MB on the default world). Calling
`malloc_trim` once those are done returns it. A no-op where there is no glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
