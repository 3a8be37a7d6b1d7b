"""`feedrank world import`: course tables from CSV or Parquet files (or PostgreSQL) into a world.

Every file is checked with DuckDB before anything is kept: missing columns, values that do not
parse as the column's type (timestamps included), unknown actions, targets outside 0/1, duplicate
ids and feed rows pointing at unknown users or posts raise `InputFileError` naming the file, the
1-based data row (the CSV header is not counted) and the column. `like` rows may carry target 0
(as the real course data does) or null; both become null. The world is assembled in a temp
directory next to the destination and renamed into place only when complete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa

from feedrank.errors import FeedrankError, InputFileError
from feedrank.world import schema
from feedrank.world.layout import WorldLayout
from feedrank.world.staging import staged

SQL_TYPES = {
    "int64": "BIGINT",
    "string": "VARCHAR",
    "timestamp[us]": "TIMESTAMP",
    "int8": "TINYINT",
}
TYPE_WORDS = {
    "BIGINT": "an integer",
    "VARCHAR": "a string",
    "TIMESTAMP": "a timestamp",
    "TINYINT": "an integer",
}
TABLE_NAMES = {"users": "user_data", "posts": "post_text_df", "feed": "feed_data"}


@dataclass(frozen=True)
class Sources:
    users: Path
    posts: Path
    feed: list[Path]

    @classmethod
    def from_folder(cls, folder: Path) -> Sources:
        """user_data.*, post_text_df.* and feed_data.* or feed_data/ (CSV or Parquet)."""

        def one(stem: str) -> Path:
            found = [p for p in sorted(folder.glob(f"{stem}.*")) if _format(p)]
            if not found:
                raise FeedrankError(f"{folder}: no {stem}.csv or {stem}.parquet")
            return found[0]

        users, posts, feed_dir = one("user_data"), one("post_text_df"), folder / "feed_data"
        feed = (
            [p for p in sorted(feed_dir.iterdir()) if _format(p)]
            if feed_dir.is_dir()
            else [one("feed_data")]
        )
        if not feed:
            raise FeedrankError(f"{feed_dir}: no CSV or Parquet files")
        return cls(users, posts, feed)


def dump_postgres(dsn: str, folder: Path) -> Sources:
    """Copy the three course tables out of PostgreSQL into CSV files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
            for name in TABLE_NAMES.values():
                with (
                    (folder / f"{name}.csv").open("wb") as sink,
                    cursor.copy(f"COPY {name} TO STDOUT WITH (FORMAT csv, HEADER true)") as copy,
                ):
                    for block in copy:
                        sink.write(block)
    except psycopg.Error as error:
        raise FeedrankError(f"PostgreSQL: {error}".strip()) from None
    return Sources.from_folder(folder)


def import_world(out: Path, sources: Sources, *, force: bool = False) -> dict:
    """Validate the sources and write them as a world at `out`; returns the manifest."""
    with staged(out, force=force) as tmp:
        return _import(WorldLayout(tmp), sources)


IMPORT_MEMORY = "1GB"


def _import(layout: WorldLayout, sources: Sources) -> dict:
    db = duckdb.connect(str(layout.root / "import.duckdb"))
    try:
        db.execute("SET preserve_insertion_order = true")
        # what does not fit goes to the database file beside the world, so a course-scale feed
        # imports in bounded memory (benchmarks/postgres_import.py)
        db.execute(f"SET memory_limit = '{IMPORT_MEMORY}'")
        _load(db, "users", sources.users, schema.USERS)
        _load(db, "posts", sources.posts, schema.POSTS)
        for path in sources.feed:
            _load(db, "feed", path, schema.FEED)
        _write(db, layout)
        stats = _fetch_row(
            db,
            """SELECT count(*), count(*) FILTER (action = 'view'),
               min(timestamp)::DATE, max(timestamp)::DATE FROM feed""",
        )
        manifest = {
            "kind": "imported",
            "ground_truth": False,
            "users": _count(db, "users"),
            "posts": _count(db, "posts"),
            "views": stats[1],
            "feed_rows": stats[0],
            "start": str(stats[2]),
            "end": str(stats[3]),
            "sources": {
                "users": str(sources.users),
                "posts": str(sources.posts),
                "feed": [str(p) for p in sources.feed],
            },
        }
    finally:
        db.close()
    (layout.root / "import.duckdb").unlink()
    layout.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    return _fetch_row(db, f"SELECT count(*) FROM {table}")[0]


def _fetch_row(db: duckdb.DuckDBPyConnection, sql: str, parameters: list | None = None) -> tuple:
    """The first row of `sql`: every query it runs (an aggregate, a row known to exist) has one."""
    row = db.execute(sql, parameters).fetchone()
    assert row is not None, f"no row from: {sql}"
    return row


def _quote(path: Path) -> str:
    """A path as a SQL string literal (DuckDB cannot take parameters in views or COPY)."""
    return "'" + str(path).replace("'", "''") + "'"


def _format(path: Path) -> str | None:
    return {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower())


# per table: (column, condition that marks a bad row of the typed view, problem with {} = value)
RULES = {
    "users": [
        ("gender", "gender NOT IN (0, 1)", "gender {} is not 0 or 1"),
        ("exp_group", "exp_group NOT BETWEEN 0 AND 4", "exp_group {} is not in 0..4"),
        ("user_id", "count(*) OVER (PARTITION BY user_id) > 1", "duplicate id {}"),
    ],
    "posts": [
        ("topic", "topic = ''", "empty topic {}"),
        ("post_id", "count(*) OVER (PARTITION BY post_id) > 1", "duplicate id {}"),
    ],
    "feed": [
        (
            "action",
            "action NOT IN ('view', 'like')",
            "unknown action {} (expected 'view' or 'like')",
        ),
        (
            "target",
            "(action = 'view' AND target IS NULL) OR target NOT IN (0, 1) "
            "OR (action = 'like' AND target = 1)",
            "target {} is not allowed (views: 0 or 1; likes: 0 or null)",
        ),
        (
            "user_id",
            "user_id NOT IN (SELECT user_id FROM users)",
            "{} is not in user_data (dangling id)",
        ),
        (
            "post_id",
            "post_id NOT IN (SELECT post_id FROM posts)",
            "{} is not in post_text_df (dangling id)",
        ),
    ],
}


def _load(db: duckdb.DuckDBPyConnection, table: str, path: Path, target: pa.Schema) -> None:
    """Check one file and append it to `table` with the schema's exact types."""
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        _read(db, table, path, target, lenient=False)
    except duckdb.Error as error:
        # files joined from two tools mix CRLF and LF endings: legal in practice, and only
        # DuckDB's non-strict mode reads them (it still refuses a malformed dialect)
        if _format(path) == "parquet" or not _mixed_line_endings(path):
            raise InputFileError(
                path, f"cannot be read as {TABLE_NAMES[table]}: {_plain(error)}"
            ) from None
        try:
            _read(db, table, path, target, lenient=True)
        except duckdb.Error as again:
            raise InputFileError(
                path, f"cannot be read as {TABLE_NAMES[table]}: {_plain(again)}"
            ) from None


def _mixed_line_endings(path: Path) -> bool:
    crlf = bare = False
    with path.open("rb") as file:
        previous = b""
        while chunk := file.read(1 << 24):
            data = previous + chunk
            crlf = crlf or b"\r\n" in data
            bare = bare or data.count(b"\n") > data.count(b"\r\n")
            if crlf and bare:
                return True
            previous = chunk[-1:]
    return False


def _plain(error: duckdb.Error) -> str:
    """DuckDB's message without its multi-line dump: the first line, the row when it says."""
    text = str(error)
    first = text.splitlines()[0].split("Error: ", 1)[-1]
    if "sniffing" in first or "dialect" in text:
        first = (
            "not comma-separated values with a header row (quotes '\"'), or rows with "
            "different numbers of fields"
        )
    line = re.search(r"\bLine: (\d+)", text)
    return first + (f" (around line {line[1]})" if line else "")


def _read(
    db: duckdb.DuckDBPyConnection, table: str, path: Path, target: pa.Schema, *, lenient: bool
) -> None:
    # a fixed dialect (RFC 4180): sniffing it costs more than reading a small file
    # numbered rows: Parquet knows its row numbers; a CSV scan keeps file order
    strict = ", strict_mode = false" if lenient else ""
    reader = {
        "csv": f"row_number() OVER () AS _row, * FROM read_csv({_quote(path)}, "
        "all_varchar = true, header = true, delim = ',', quote = '\"', escape = '\"'"
        f"{strict})",
        "parquet": f"file_row_number + 1 AS _row, * EXCLUDE (file_row_number) "
        f"FROM read_parquet({_quote(path)}, file_row_number = true)",
    }[_format(path) or "csv"]
    db.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT {reader}")
    present = {row[0] for row in db.execute("DESCRIBE src").fetchall()}
    for name in target.names:
        if name not in present:
            raise InputFileError(
                path, f"missing column (expected {', '.join(target.names)})", column=name
            )
    typed = {f.name: SQL_TYPES[str(f.type)] for f in target}
    _check(
        db,
        path,
        "src",
        [
            (
                c,
                f'(TRY_CAST("{c}" AS {t}) IS NULL AND "{c}" IS NOT NULL)'
                + ("" if c == "target" else f' OR "{c}" IS NULL'),
                f"{{}} is {'' if c == 'target' else 'missing or '}not {TYPE_WORDS[t]}",
            )
            for c, t in typed.items()
        ],
    )
    casts = ", ".join(f'TRY_CAST("{c}" AS {t}) AS "{c}"' for c, t in typed.items())
    db.execute(f"CREATE OR REPLACE TEMP VIEW typed AS SELECT _row, {casts} FROM src")
    _check(db, path, "typed", RULES[table])
    columns = ", ".join(f'"{c}"' for c in typed)
    normalise = (
        "* REPLACE (CASE WHEN action = 'like' THEN NULL ELSE target END AS target)"
        if table == "feed"
        else "*"
    )
    exists = _fetch_row(
        db, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    )[0]
    verb = f"INSERT INTO {table}" if exists else f"CREATE TABLE {table} AS"
    db.execute(f"{verb} SELECT {normalise} FROM (SELECT {columns} FROM typed ORDER BY _row)")


def _check(
    db: duckdb.DuckDBPyConnection, path: Path, view: str, rules: list[tuple[str, str, str]]
) -> None:
    """One pass over `view`: the first row breaking each rule; raise for the first rule broken."""
    flags = ", ".join(f"({condition}) AS bad{i}" for i, (_, condition, _) in enumerate(rules))
    firsts = ", ".join(f"min(_row) FILTER (WHERE bad{i})" for i in range(len(rules)))
    rows = _fetch_row(db, f"SELECT {firsts} FROM (SELECT _row, {flags} FROM {view})")
    for (column, _, problem), row in zip(rules, rows):
        if row is not None:
            value = _fetch_row(db, f'SELECT "{column}" FROM {view} WHERE _row = ?', [row])[0]
            shown = "a missing value" if value is None else repr(value)
            raise InputFileError(path, problem.format(shown), row=int(row), column=column)


def _write(db: duckdb.DuckDBPyConnection, layout: WorldLayout) -> None:
    for table, path in (("users", layout.users), ("posts", layout.posts)):
        key = "user_id" if table == "users" else "post_id"
        db.execute(
            f"COPY (SELECT * FROM {table} ORDER BY {key}) TO {_quote(path)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    layout.feed_dir.mkdir()
    days = [
        d for (d,) in db.execute("SELECT DISTINCT timestamp::DATE FROM feed ORDER BY 1").fetchall()
    ]
    for day in days:
        db.execute(
            f"COPY (SELECT * FROM feed WHERE timestamp::DATE = DATE '{day}' "
            f"ORDER BY timestamp, action = 'like') "
            f"TO {_quote(layout.feed_dir / f'{day}.parquet')} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
