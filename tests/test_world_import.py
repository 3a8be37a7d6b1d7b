"""`feedrank world import`: course files in, a world out; bad files named by file, row, column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import psycopg
import pytest

from feedrank.cli import main
from feedrank.world.describe import summarize
from feedrank.world.layout import WorldLayout


def _frames(world: Path) -> dict[str, pd.DataFrame]:
    layout = WorldLayout(world)
    db = duckdb.connect()
    return {
        "user_data": pd.read_parquet(layout.users),
        "post_text_df": pd.read_parquet(layout.posts),
        "feed_data": db.execute(
            f"SELECT * FROM '{layout.feed_glob}' "
            "ORDER BY timestamp, action = 'like', user_id, post_id"
        ).df(),
    }


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Error messages on one line, whatever the terminal, so they can be matched."""
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.fixture(scope="module")
def tables(tiny_world: Path) -> dict[str, pd.DataFrame]:
    return _frames(tiny_world)


def _write_csv(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """The tables as the course exports them: CSV, `like` rows with target 0 instead of null."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if name == "feed_data":
            frame = frame.assign(target=frame["target"].fillna(0).astype(int))
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _import(source: Path, out: Path) -> int:
    return main(["world", "import", "--source", str(source), "--out", str(out)])


def test_csv_import_round_trips_and_normalises_like_targets(tmp_path: Path, tables) -> None:
    out = tmp_path / "imported"
    assert _import(_write_csv(tmp_path / "csv", tables), out) == 0
    back = _frames(out)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(back[name], frame, check_dtype=False)
    like_targets = back["feed_data"].loc[back["feed_data"]["action"] == "like", "target"]
    assert like_targets.isna().all() and len(like_targets) > 0
    manifest = (out / "world.json").read_text()
    assert '"kind": "imported"' in manifest and '"ground_truth": false' in manifest


def test_parquet_files_import_with_explicit_flags(tmp_path: Path, tiny_world: Path, tables) -> None:
    layout, out = WorldLayout(tiny_world), tmp_path / "imported"
    feed_files = sorted(str(p) for p in layout.feed_dir.glob("*.parquet"))[:10]
    assert (
        main(
            [
                "world",
                "import",
                "--users",
                str(layout.users),
                "--posts",
                str(layout.posts),
                "--feed",
                *feed_files,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in ("user_data", "post_text_df"):
        pd.testing.assert_frame_equal(_frames(out)[name], tables[name], check_dtype=False)
    assert sorted(p.name for p in (out / "feed_data").iterdir()) == [
        Path(p).name for p in feed_files
    ]


def _drop_city(t):
    t["user_data"] = t["user_data"].drop(columns="city")


def _set(frame: pd.DataFrame, index: int, column: str, value: object) -> None:
    frame[column] = frame[column].astype(object)
    frame.loc[index, column] = value


def _bad_age(t):
    _set(t["user_data"], 4, "age", "old")


def _duplicate_user(t):
    t["user_data"].loc[9, "user_id"] = t["user_data"].loc[8, "user_id"]


def _bad_timestamp(t):
    _set(t["feed_data"], 9, "timestamp", "2021-13-45 25:00:00")


def _unknown_action(t):
    t["feed_data"].loc[6, "action"] = "click"


def _dangling_user(t):
    t["feed_data"].loc[11, "user_id"] = 99_999_999


def _dangling_post(t):
    t["feed_data"].loc[2, "post_id"] = 99_999_999


def _bad_target(t):
    view = t["feed_data"].index[t["feed_data"]["action"] == "view"][3]
    t["feed_data"].loc[view, "target"] = 7


def _missing_post_text(t):
    t["post_text_df"] = t["post_text_df"].drop(columns="text")


def _view_row(t) -> int:
    return int(t["feed_data"].index[t["feed_data"]["action"] == "view"][3]) + 1


CASES = [  # (how to break the tables, file, row, column, words in the problem)
    (_drop_city, "user_data.csv", None, "city", "missing column"),
    (_bad_age, "user_data.csv", 5, "age", "'old' is missing or not an integer"),
    (_duplicate_user, "user_data.csv", 9, "user_id", "duplicate id"),
    (_missing_post_text, "post_text_df.csv", None, "text", "missing column"),
    (_bad_timestamp, "feed_data.csv", 10, "timestamp", "not a timestamp"),
    (_unknown_action, "feed_data.csv", 7, "action", "unknown action 'click'"),
    (_dangling_user, "feed_data.csv", 12, "user_id", "not in user_data"),
    (_dangling_post, "feed_data.csv", 3, "post_id", "not in post_text_df"),
    (_bad_target, "feed_data.csv", _view_row, "target", "target 7 is not allowed"),
]


@pytest.mark.parametrize(
    "breaker, file, row, column, problem", CASES, ids=[c[0].__name__.strip("_") for c in CASES]
)
def test_malformed_files_are_named_and_nothing_is_left(
    tmp_path: Path, tables, capsys, breaker, file, row, column, problem
) -> None:
    broken = {name: frame.copy() for name, frame in tables.items()}
    broken["feed_data"] = broken["feed_data"].head(2000)
    breaker(broken)
    row = row(broken) if callable(row) else row
    out = tmp_path / "out"
    assert _import(_write_csv(tmp_path / "csv", broken), out) == 2
    error = capsys.readouterr().err
    assert f"error: {tmp_path / 'csv' / file}" in error
    assert f"column '{column}'" in error and problem in error
    assert (f"row {row}," in error) if row else ("row" not in error)
    assert not out.exists() and list(tmp_path.glob(".out*")) == []


def test_parquet_errors_name_the_file_row(tmp_path: Path, tiny_world: Path, tables, capsys) -> None:
    users = tables["user_data"].copy()
    users.loc[6, "gender"] = 3
    users.to_parquet(tmp_path / "users.parquet", row_group_size=4)  # rows over many groups
    layout = WorldLayout(tiny_world)
    assert (
        main(
            [
                "world",
                "import",
                "--users",
                str(tmp_path / "users.parquet"),
                "--posts",
                str(layout.posts),
                "--feed",
                str(layout.feed_dir / "2021-10-01.parquet"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "users.parquet, row 7, column 'gender': gender 3 is not 0 or 1" in error


def test_unreadable_and_absent_sources_are_clear_errors(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    assert _import(folder, tmp_path / "out") == 2
    assert "no user_data.csv or user_data.parquet" in capsys.readouterr().err
    (folder / "user_data.parquet").write_text("not parquet")
    (folder / "post_text_df.csv").write_text("post_id,text,topic\n")
    (folder / "feed_data.csv").write_text("timestamp,user_id,post_id,action,target\n")
    assert _import(folder, tmp_path / "out") == 2
    assert "cannot be read as user_data" in capsys.readouterr().err
    assert main(["world", "import", "--out", str(tmp_path / "x")]) == 2
    assert "exactly one of" in capsys.readouterr().err


COURSE_SCHEMA = """
CREATE TABLE user_data (user_id bigint PRIMARY KEY, gender integer, age integer, country text,
                        city text, exp_group integer, os text, source text);
CREATE TABLE post_text_df (post_id bigint PRIMARY KEY, text text, topic text);
CREATE TABLE feed_data (timestamp timestamp, user_id bigint, post_id bigint, action text,
                        target integer);
"""


def _into_postgres(dsn: str, world: Path) -> None:
    """The world's three tables in a PostgreSQL database, in the course's schema."""
    layout = WorldLayout(world)
    sources = {"user_data": layout.users, "post_text_df": layout.posts}
    sources["feed_data"] = layout.feed_glob
    with psycopg.connect(dsn) as connection:
        connection.execute(COURSE_SCHEMA.encode())
        for table, source in sources.items():
            csv = duckdb.sql(f"SELECT * FROM read_parquet('{source}')").df().to_csv(index=False)
            with connection.cursor().copy(
                f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)".encode()
            ) as copy:
                copy.write(csv)


def _checksum(world: Path, table: str) -> str:
    layout = WorldLayout(world)
    source = {"user_data": layout.users, "post_text_df": layout.posts}.get(table, layout.feed_glob)
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{source}') ORDER BY ALL").df()
    return hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()


def test_a_world_round_trips_through_postgresql(tmp_path, tiny_world, postgres) -> None:
    postgres.execute("CREATE DATABASE round_trip")
    dsn = postgres.dsn.rsplit("/", 1)[0] + "/round_trip"
    _into_postgres(dsn, tiny_world)
    out = tmp_path / "from-postgres"
    assert main(["world", "import", "--dsn", dsn, "--out", str(out)]) == 0
    original, imported = summarize(WorldLayout(tiny_world)), summarize(WorldLayout(out))
    assert imported["manifest"]["kind"] == "imported"
    assert {k: v for k, v in imported.items() if k != "manifest"} == {
        k: v for k, v in original.items() if k != "manifest"
    }
    for table in ("user_data", "post_text_df", "feed_data"):
        assert _checksum(out, table) == _checksum(tiny_world, table), table


def test_an_unreachable_postgresql_is_a_clear_error(tmp_path, capsys) -> None:
    out = tmp_path / "pg"
    command = ["world", "import", "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--out"]
    assert main([*command, str(out)]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
    assert not out.exists()


def test_mixed_line_endings_are_read(tmp_path: Path, tables) -> None:
    """Files concatenated from two tools: CRLF rows, then LF rows."""
    source = _write_csv(
        tmp_path / "csv", {k: v.head(300) if k == "feed_data" else v for k, v in tables.items()}
    )
    users = (source / "user_data.csv").read_bytes().decode()
    lines = users.splitlines()
    half = len(lines) // 2
    (source / "user_data.csv").write_bytes(
        ("\r\n".join(lines[:half]) + "\r\n" + "\n".join(lines[half:]) + "\n").encode()
    )
    out = tmp_path / "imported"
    assert _import(source, out) == 0
    pd.testing.assert_frame_equal(_frames(out)["user_data"], tables["user_data"], check_dtype=False)


@pytest.mark.parametrize(
    "content",
    [
        'user_id,gender,age,country,city,exp_group,os,source\r\n1,0,20,x,y,1,iOS,ads\n2,"1,30\n',
        "user_id,gender,age,country,city,exp_group,os,source\n1,0,20,x,y,1,iOS,ads\n2,1\n",
    ],
)
def test_files_duckdb_cannot_parse_are_one_plain_line(
    tmp_path: Path, tables, capsys, content
) -> None:
    source = _write_csv(
        tmp_path / "csv", {k: v.head(300) if k == "feed_data" else v for k, v in tables.items()}
    )
    (source / "user_data.csv").write_text(content)
    assert _import(source, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {source / 'user_data.csv'}: cannot be read as user_data")
    assert error.count("\n") == 1 and "Traceback" not in error and "Possible fixes" not in error
