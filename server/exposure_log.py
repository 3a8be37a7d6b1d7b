"""The exposure log: one JSON line per answered feed request, on disk before the answer leaves.
The same durable writer keeps the feed events clients post (`server/events.py`, prefix `events`).

Records go to a single writer thread that appends everything queued so far with one `write`
call and (per settings) one `fsync`, then releases the waiting requests: group commit, so the
durable log costs one disk flush per burst rather than per request, and the event loop never
blocks on the disk. A request awaits its record's commit before its response is sent, so after
`kill -9` every answer a client received is in the log.

Files: `LOG/<prefix>-<UTC start>-<seq>.jsonl`, rotated by size or age. Read them all with
`SELECT * FROM read_json('LOG/exposures-*.jsonl', columns=...)` (see `query`).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from feedrank.errors import FeedrankError

COLUMNS = {
    "request_id": "VARCHAR", "server_time": "TIMESTAMPTZ", "requested_time": "TIMESTAMP",
    "user_id": "BIGINT", "exp_group": "VARCHAR", "model": "VARCHAR", "version": "BIGINT",
    "post_ids": "BIGINT[]", "fallback": "BOOLEAN", "latency_ms": "DOUBLE",
}


def query(log_dir: Path | str) -> str:
    """The one DuckDB query that reads every record of a log folder, typed."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items())
    pattern = str(Path(log_dir) / "exposures-*.jsonl").replace("'", "''")
    return (f"SELECT * FROM read_json('{pattern}', format='newline_delimited', "
            f"columns={{{columns}}})")


class ExposureLog:
    def __init__(self, log_dir: Path, *, rotate_bytes: int, rotate_seconds: float,
                 fsync: bool, prefix: str = "exposures") -> None:
        self.dir, self.rotate_bytes, self.rotate_seconds, self.fsync = (
            log_dir, rotate_bytes, rotate_seconds, fsync)
        self.prefix = prefix
        self._start = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._seq = 0
        self._fd = -1
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._open_next()
        except OSError as error:
            raise FeedrankError(f"{log_dir}: cannot write the {prefix} log there: {error}") \
                from None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"{prefix}-log", daemon=True)
        self._thread.start()

    async def write(self, record: dict) -> None:
        """Append one record; return once it is written (and fsynced when configured)."""
        await self.write_many([record])

    async def write_many(self, records: list[dict]) -> None:
        """Append records together, in one commit; return once they are written."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
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
        data = "".join(line for line, _, _ in batch).encode()
        error: OSError | None = None
        try:
            if (self._bytes >= self.rotate_bytes
                    or time.monotonic() - self._opened >= self.rotate_seconds):
                self._open_next()
            # one write call per batch: lines are never torn between records
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if self.fsync:
                os.fsync(self._fd)
            self._bytes += len(data)
        except OSError as exc:
            error = exc
        for _, loop, done in batch:
            loop.call_soon_threadsafe(_settle, done, error)


def _settle(done: asyncio.Future, error: OSError | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
