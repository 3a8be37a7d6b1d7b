"""A world's history on disk (W/features/history/): sorted once by `feedrank build`, mapped by
the server.

One .npy file per array of every `EventIndex` and per-minute count, and history.json for the
epoch and time bits. The server maps the files (`np.load(mmap_mode="r")`): it sorts nothing and
reads no event into a Python object at start-up, a request reads only the pages its searches
touch, and the processes serving one world share those pages. DuckDB sorts the events within a
bounded memory, spilling what does not fit to a folder beside the files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np

from feedrank.features.event_index import EventIndex, check_fits
from feedrank.features.history import ACTIONS, MINUTE_MS, History

META = "history.json"
SORT_MEMORY = "2GB"


def build_history(events: dict[str, Path], folder: Path) -> History:
    """Sort each action's events (`events`: action -> Parquet with user_id, post_id,
    timestamp) into `folder` and return the stored history, mapped."""
    folder.mkdir(parents=True, exist_ok=True)
    with bounded_duckdb(folder / "sort.tmp") as db:
        sources = {a: f"read_parquet('{events[a]}')" for a in ACTIONS}
        union = " UNION ALL ".join(f"SELECT * FROM {s}" for s in sources.values())
        first, last, max_user, max_post = (
            db.execute(
                "SELECT epoch_us(min(timestamp)), epoch_us(max(timestamp)), max(user_id), "
                f"max(post_id) FROM ({union})"
            ).fetchone()
            or (None,) * 4
        )
        epoch = np.datetime64(first or 0, "us").astype("datetime64[D]").astype("datetime64[ms]")
        epoch_ms = int(epoch.astype(np.int64))
        span = max((last or 0) // 1000 - epoch_ms, 0)
        bits = (span + 2).bit_length()
        check_fits(max(max_user or 0, max_post or 0), bits)
        post_type = "USMALLINT" if (max_post or 0) < 2**16 else "UINTEGER"
        t = f"(epoch_us(timestamp) // 1000 - {epoch_ms})"
        for action, source in sources.items():
            by_user, by_post = (
                f"({key}::BIGINT << {bits}) | {t}" for key in ("user_id", "post_id")
            )
            _save_sorted(db, source, by_user, f"post_id::{post_type}", folder / f"{action}_by_user")
            _save_sorted(db, source, by_post, None, folder / f"{action}_by_post")
            _save_per_minute(db, source, t, span // MINUTE_MS + 1, folder / f"{action}_per_minute")
    meta = {
        "epoch": str(epoch),
        "bits": bits,
        "last_event": None if last is None else str(np.datetime64(last, "us")),
    }
    (folder / META).write_text(json.dumps(meta) + "\n")
    return load_history(folder)


@contextlib.contextmanager
def bounded_duckdb(spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection within SORT_MEMORY that spills to `spill` (removed after): sorting
    the course's 69 M views fits beside everything else a build holds."""
    db = duckdb.connect(config={"memory_limit": SORT_MEMORY, "temp_directory": str(spill)})
    try:
        yield db
    finally:
        db.close()
        shutil.rmtree(spill, ignore_errors=True)


def _save_sorted(
    db: duckdb.DuckDBPyConnection, source: str, composite: str, payload: str | None, stem: Path
) -> None:
    """`stem`.npy: the sorted composites; `stem`_posts.npy: the payload, in the same order."""
    select = f"{composite} AS c" + ("" if payload is None else f", {payload} AS p")
    order = "c" if payload is None else "c, p"
    rows = db.execute(f"SELECT {select} FROM {source} ORDER BY {order}").fetchnumpy()
    np.save(stem.with_suffix(".npy"), np.asarray(rows["c"], dtype=np.int64))
    if payload is not None:
        np.save(stem.parent / f"{stem.name}_posts.npy", np.asarray(rows["p"]))


def _save_per_minute(
    db: duckdb.DuckDBPyConnection, source: str, t: str, minutes: int, stem: Path
) -> None:
    counts = db.execute(
        f"SELECT {t} // {MINUTE_MS} AS m, count(*) AS n FROM {source} GROUP BY m"
    ).fetchnumpy()
    table = np.zeros(minutes, dtype=np.int64)
    table[np.asarray(counts["m"], dtype=np.int64)] = counts["n"]
    np.save(stem.with_suffix(".npy"), np.concatenate([[0], np.cumsum(table)]))


def load_history(folder: Path) -> History:
    meta = json.loads((folder / META).read_text())

    def array(name: str) -> np.ndarray:
        # a plain array over the mapping: slicing a np.memmap costs microseconds a call
        return np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))

    bits = int(meta["bits"])
    return History(
        np.datetime64(meta["epoch"], "ms"),
        bits,
        None if meta["last_event"] is None else np.datetime64(meta["last_event"], "us"),
        {a: EventIndex(array(f"{a}_by_user"), bits, array(f"{a}_by_user_posts")) for a in ACTIONS},
        {a: EventIndex(array(f"{a}_by_post"), bits) for a in ACTIONS},
        {a: array(f"{a}_per_minute") for a in ACTIONS},
    )
