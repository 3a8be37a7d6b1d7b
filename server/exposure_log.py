"""The exposure log: one JSON line per answered feed request, on disk before the answer leaves.
The same durable writer keeps the feed events clients post (`server/events.py`, prefix `events`).

Records go to a single writer thread that appends everything queued so far with one `write`
call and (per settings) one `fsync`, then releases the waiting requests: group commit, so the
durable log costs one disk flush per burst rather than per request, and the event loop never
blocks on the disk. A request awaits its record's commit before its response is sent, so after
`kill -9` every answer a client received is in the log.

A commit that fails (a full disk, a file-size limit) is cut back off the file before its
requests hear of it: they get the error, and the file ends where the last good commit ended, so
a refused batch leaves nothing and later records never glue onto a fragment. Only a crash in the
middle of a write can leave an incomplete last line; readers (`read_query`) skip such a line
with a warning instead of failing the folder.

Files: `LOG/<prefix>-<UTC start>-<seq>.jsonl`, rotated by size or age. Read them all with
`query(LOG)`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from feedrank.errors import FeedrankError

log = logging.getLogger("feedrank.log")

COLUMNS = {
    "request_id": "VARCHAR",
    "server_time": "TIMESTAMPTZ",
    "requested_time": "TIMESTAMP",
    "user_id": "BIGINT",
    "exp_group": "VARCHAR",
    "model": "VARCHAR",
    "version": "BIGINT",
    "ranker": "VARCHAR",
    "post_ids": "BIGINT[]",
    "fallback": "BOOLEAN",
    "candidates": "BIGINT",
    "latency_ms": "DOUBLE",
}


def query(*log_dirs: Path | str) -> str:
    """The one DuckDB query that reads every record of log folders (one each replica's, or
    one all share), typed."""
    return read_query(log_files(*log_dirs), COLUMNS, "request_id")


def log_files(*log_dirs: Path | str) -> list[Path]:
    return sorted(f for d in log_dirs for f in Path(d).glob("exposures-*.jsonl"))


def encode_lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)


def read_query(files: list[Path], columns: dict[str, str], required: str) -> str:
    """A DuckDB query over JSON-lines log files that reads every complete record: an incomplete
    last line (a crash in the middle of a write) becomes a row without `required` and is left out.
    Warns about each such file."""
    for path in files:
        if ends_torn(path):
            log.warning(
                "%s: the last line is incomplete (the writer stopped in the middle of "
                "it); it is skipped",
                path,
            )
    typed = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return (
        f"SELECT * FROM read_json({sql_paths(files)}, format='newline_delimited', "
        f"columns={{{typed}}}, ignore_errors=true) WHERE {required} IS NOT NULL"
    )


def sql_paths(files: list[Path]) -> str:
    """Paths as a DuckDB list literal (views cannot take parameters)."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"


def ends_torn(path: Path) -> bool:
    """Whether a log file's last line lacks its newline."""
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


class ExposureLog:
    def __init__(
        self,
        log_dir: Path,
        *,
        rotate_bytes: int,
        rotate_seconds: float,
        fsync: bool,
        prefix: str = "exposures",
    ) -> None:
        self.dir, self.rotate_bytes, self.rotate_seconds, self.fsync = (
            log_dir,
            rotate_bytes,
            rotate_seconds,
            fsync,
        )
        self.prefix = prefix
        self._start = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._seq = 0
        self._fd = -1
        self.files: list[Path] = []  # every file this process has written, oldest first
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._open_next()
        except OSError as error:
            raise FeedrankError(
                f"{log_dir}: cannot write the {prefix} log there: {error}"
            ) from None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"{prefix}-log", daemon=True)
        self._thread.start()

    async def write(self, record: dict) -> None:
        """Append one record; return once it is written (and fsynced when configured)."""
        await self.write_many([record])

    async def write_many(self, records: list[dict]) -> None:
        """Append records together, in one commit; return once they are written."""
        await self.write_lines(encode_lines(records))

    async def write_lines(self, lines: bytes) -> None:
        """Append `encode_lines` output in one commit; return once it is written."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((lines, loop, done))
        await done

    def close(self) -> None:
        """Commit what is queued, then stop the writer and close the file."""
        self._queue.put(None)
        self._thread.join()
        os.close(self._fd)

    @property
    def current_file(self) -> Path:
        return self._path

    def _open_next(self) -> None:
        while True:
            self._seq += 1
            path = self.dir / f"{self.prefix}-{self._start}-{self._seq:04d}.jsonl"
            try:
                # O_EXCL: two servers started in the same second never share a file
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                break
            except FileExistsError:
                continue
        # the new file is open before the old one closes: a failed rotation keeps the old one
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._path, self._bytes, self._opened = fd, path, 0, time.monotonic()
        self.files.append(path)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stopping = None in batch
            batch = [item for item in batch if item is not None]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list) -> None:
        data = b"".join(line for line, _, _ in batch)
        error: OSError | None = None
        try:
            if (
                self._bytes >= self.rotate_bytes
                or time.monotonic() - self._opened >= self.rotate_seconds
            ):
                self._open_next()
            self._append(data)
        except OSError as exc:
            error = exc
            self._cut_back()
        for _, loop, done in batch:
            loop.call_soon_threadsafe(_settle, done, error)

    def _append(self, data: bytes) -> None:
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        if self.fsync:
            os.fsync(self._fd)
        self._bytes += len(data)

    def _cut_back(self) -> None:
        """Remove what a failed commit left: its requests are refused, so none of it may stay."""
        try:
            os.ftruncate(self._fd, self._bytes)
        except OSError as error:
            # the fragment stays (readers skip an incomplete last line); never append after it
            log.error(
                "%s: cannot cut a failed write back (%s); continuing in a new file",
                self._path,
                error,
            )
            try:
                self._open_next()
            except OSError:
                pass


def _settle(done: asyncio.Future, error: OSError | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
