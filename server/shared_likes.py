"""Posted likes shared by every process that serves the feed, so that a like posted through one
replica is never shown again by another.

Two stores behind one interface (`SharedLikes`): `publish` makes an accepted batch durable
before the 200 leaves; `load` reads every like published so far, before the server accepts a
connection; `follow` then applies those that other processes publish, within a second.
- `LogFolder` (the embedded default): the events log folder is the store. Each process appends
  to its own `events-*.jsonl` files and follows the files of the other processes
  (`feedrank serve --workers N` shares one folder) by polling them.
- `PostgresLikes` (`server.state_url = "postgresql://..."`): one table for every replica on any
  machine. A batch is inserted and announced (`NOTIFY`) in one transaction; each replica
  `LISTEN`s and fetches the rows announced by others; after a lost connection it reconnects and
  catches up on every transaction it may have missed. If the database is down, posting answers
  503 and nothing is written; feeds keep being served from what is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import psycopg

from feedrank.errors import FeedrankError
from feedrank.server.events import EventBatch, SharedStateUnavailable, log_files
from feedrank.server.exposure_log import ExposureLog

log = logging.getLogger("feedrank.shared_likes")
FOLLOW_INTERVAL_S = 0.2
BLOCK_BYTES = 16 << 20  # events log read at most this much at a time
RECONNECT_DELAY_S = 0.5
CHANNEL = "feedrank_events"


@dataclass(frozen=True)
class Likes:
    user_id: np.ndarray  # int64
    post_id: np.ndarray  # int64
    timestamp: np.ndarray  # datetime64[us]

    @staticmethod
    def of_rows(rows: list[tuple[int, int, object]]) -> Likes:
        columns = list(zip(*rows)) or [(), (), ()]
        return Likes(
            np.array(columns[0], np.int64),
            np.array(columns[1], np.int64),
            np.array(columns[2], "datetime64[us]"),
        )

    def __len__(self) -> int:
        return len(self.user_id)


Apply = Callable[[Likes], None]


def replica_name() -> str:
    """What `x-feedrank-replica` says: the host and the process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SharedLikes:
    def load(self) -> Likes:
        """Every like published so far, read before the server accepts a connection."""
        raise NotImplementedError

    async def follow(self, apply: Apply) -> None:
        """From now on, apply the likes other processes publish (a background task)."""
        raise NotImplementedError

    async def publish(self, batch: EventBatch, lines: bytes) -> None:
        """Make an accepted batch durable (`lines`: its events log lines) before the 200."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class LogFolder(SharedLikes):
    def __init__(self, events_log: ExposureLog) -> None:
        self.events_log, self.folder = events_log, events_log.dir
        self._read: dict[Path, int] = {}  # bytes of each file applied so far
        self._follow: asyncio.Task | None = None

    def load(self) -> Likes:
        return self._new_likes(at_start=True)

    async def follow(self, apply: Apply) -> None:
        self._follow = asyncio.create_task(self._follow_others(apply))

    async def publish(self, batch: EventBatch, lines: bytes) -> None:
        await self.events_log.write_lines(lines)

    async def close(self) -> None:
        if self._follow is not None:
            self._follow.cancel()

    async def _follow_others(self, apply: Apply) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            try:
                likes = await loop.run_in_executor(None, self._new_likes)
            except OSError as error:  # a file removed under us: read again next time
                log.warning("reading the events log folder: %s", error)
                continue
            if len(likes):
                apply(likes)

    def _new_likes(self, at_start: bool = False) -> Likes:
        """Likes in complete lines of other processes' files not read yet (a line still being
        written is read once complete; at start-up, an incomplete last line is a write that a
        crash cut short, left out with a warning)."""
        own = set(self.events_log.files)
        rows: list[tuple[int, int, object]] = []
        for path in log_files(self.folder):
            if path in own:
                continue
            with path.open("rb") as file:
                offset = self._read.get(path, 0)
                file.seek(offset)
                while block := file.read(BLOCK_BYTES):
                    end = block.rfind(b"\n") + 1
                    rows += _likes(block[:end])
                    offset += end
                    if end < len(block):  # part of a line: from its start next time
                        file.seek(offset)
                        if end == 0 and len(block) == BLOCK_BYTES:
                            log.error("%s: no line end in %d bytes; not read", path, len(block))
                            break
                        if len(block) < BLOCK_BYTES:
                            if at_start:
                                log.warning("%s: incomplete last line left out", path)
                            break
            self._read[path] = offset
        return Likes.of_rows(rows)


def _likes(lines: bytes) -> list[tuple[int, int, object]]:
    return [
        (event["user_id"], event["post_id"], np.datetime64(event["timestamp"], "us"))
        for line in lines.splitlines()
        if b'"like"' in line and (event := orjson.loads(line))["action"] == "like"
    ]


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS feedrank_events (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    user_id bigint NOT NULL,
    post_id bigint NOT NULL,
    action text NOT NULL,
    timestamp timestamp NOT NULL,
    target smallint,
    replica text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS feedrank_events_likes ON feedrank_events (xid) WHERE action = 'like';
-- every insert is announced at commit, with the first and last id of its statement's rows
CREATE OR REPLACE FUNCTION feedrank_announce() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', (SELECT min(id) || ' ' || max(id) FROM inserted));
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER feedrank_events_announce AFTER INSERT ON feedrank_events
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION feedrank_announce();
"""
LIKES = (
    "SELECT user_id, post_id, timestamp FROM feedrank_events "
    "WHERE action = 'like' AND replica <> %s"
)
ANNOUNCED = f"{LIKES} AND id BETWEEN %s AND %s"
# every like of a transaction not known to have been applied: all of those at or above the
# horizon, the oldest transaction still running when the last catch-up looked
SINCE = f"{LIKES} AND xid >= %s::xid8"
HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"


class PostgresLikes(SharedLikes):
    """Never misses a like: a transaction committed before a replica listens is read by its
    catch-up (every transaction from the horizon on), one committed after is announced to it.
    A like may be applied twice (announced and caught up), which changes no feed."""

    def __init__(self, url: str, events_log: ExposureLog, replica: str) -> None:
        # rows of this process are applied when posted; the token tells a restarted process
        # (which may get the same pid, in a container) from its earlier self
        self.url, self.events_log = url, events_log
        self.replica = f"{replica}:{uuid.uuid4().hex[:8]}"
        self.horizon = "0"
        self._writer: psycopg.AsyncConnection | None = None
        self._write_lock = asyncio.Lock()
        self._listen: asyncio.Task | None = None
        self._apply: Apply = lambda likes: None

    def load(self) -> Likes:
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as connection:
                connection.execute(SCHEMA.encode())
                row = connection.execute(HORIZON.encode()).fetchone()
                rows = connection.execute(SINCE.encode(), (self.replica, self.horizon)).fetchall()
        except psycopg.Error as error:
            raise FeedrankError(f"server.state_url: PostgreSQL: {error}".strip()) from None
        self.horizon = row[0] if row else self.horizon
        return Likes.of_rows(rows)

    async def follow(self, apply: Apply) -> None:
        """Listens from here; what was committed since `load` is caught up first."""
        self._apply = apply
        self._listen = asyncio.create_task(self._follow(None))

    async def publish(self, batch: EventBatch, lines: bytes) -> None:
        rows = [
            (r["user_id"], r["post_id"], r["action"], r["timestamp"], r.get("target"), self.replica)
            for r in batch.records
        ]
        async with self._write_lock:
            try:
                if self._writer is None or self._writer.closed:
                    self._writer = await self._connect("writer")
                async with self._writer.transaction(), self._writer.cursor() as cursor:
                    await cursor.executemany(
                        b"INSERT INTO feedrank_events "
                        b"(user_id, post_id, action, timestamp, target, replica) "
                        b"VALUES (%s, %s, %s, %s, %s, %s)",
                        rows,
                    )
            except psycopg.Error as error:
                self._writer = None
                raise SharedStateUnavailable(f"shared state unavailable: {error}".strip()) from None
        try:  # the A/B analysis reads the log folder; PostgreSQL already holds the batch
            await self.events_log.write_lines(lines)
        except OSError as error:
            log.error("events stored in PostgreSQL but not in the events log: %s", error)

    async def close(self) -> None:
        if self._listen is not None:
            self._listen.cancel()
        if self._writer is not None:
            await self._writer.close()

    async def _connect(self, role: str) -> psycopg.AsyncConnection:
        """A connection named for `pg_stat_activity`: `feedrank <role> <replica>`."""
        return await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=3,
            application_name=f"feedrank {role} {self.replica}"[:63],
        )

    async def _follow(self, listener: psycopg.AsyncConnection | None) -> None:
        while True:
            if listener is None:
                listener = await self._reconnect()
            try:
                while True:
                    # the connection is busy while it waits: gather a moment's announcements,
                    # then read their rows (a row read twice changes nothing)
                    notes = listener.notifies(timeout=FOLLOW_INTERVAL_S)
                    ranges = [tuple(map(int, n.payload.split())) async for n in notes]
                    if ranges:
                        first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
                        await self._fetch(listener, ANNOUNCED, (self.replica, first, last))
            except psycopg.Error as error:
                log.warning("shared state: connection lost (%s); reconnecting", error)
            await listener.close()
            listener = None

    async def _reconnect(self) -> psycopg.AsyncConnection:
        """Listening again, with everything committed meanwhile applied."""
        while True:
            try:
                listener = await self._connect("listener")
                await self._listen_and_catch_up(listener)
                return listener
            except psycopg.Error as error:
                log.warning("shared state: %s; retrying", str(error).strip())
                await asyncio.sleep(RECONNECT_DELAY_S)

    async def _listen_and_catch_up(self, connection: psycopg.AsyncConnection) -> None:
        await connection.execute(f"LISTEN {CHANNEL}".encode())
        cursor = await connection.execute(HORIZON.encode())
        row = await cursor.fetchone()
        await self._fetch(connection, SINCE, (self.replica, self.horizon))
        self.horizon = row[0] if row else self.horizon
        log.info("shared state: listening, caught up from transaction %s", self.horizon)

    async def _fetch(self, connection: psycopg.AsyncConnection, sql: str, args: tuple) -> None:
        cursor = await connection.execute(sql.encode(), args)
        rows = await cursor.fetchall()
        if rows:
            self._apply(Likes.of_rows(rows))
