"""The durable logs under a failing disk: a write that fails leaves the file as it was (a refused
batch leaves nothing, the next record never glues onto a fragment), readers skip the incomplete
last line a crash leaves, and a server starts on a folder a crash or a full disk left behind.

A full disk is a per-process file-size limit (RLIMIT_FSIZE): writes past it fail with EFBIG after
writing what fits, exactly the partial write a full file system gives, without mounting one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import httpx
import pytest

from feedrank.ab.server_process import ServerProcess as BareServerProcess
from feedrank.server import events
from feedrank.server.exposure_log import ExposureLog, query
from feedrank.server.router import bucket
from feedrank.server.shared_likes import LogFolder

from feed_serving import ServerProcess, built_repository, feed, first_user, last_moment, later, like

WRITER = textwrap.dedent("""
    import asyncio, json, resource, sys
    from pathlib import Path
    from feedrank.server.exposure_log import ExposureLog

    log = ExposureLog(Path(sys.argv[1]), rotate_bytes=1 << 30, rotate_seconds=3600, fsync=True)
    record = lambda i, pad=0: {"request_id": f"r{i}", "user_id": i, "latency_ms": 1.5,
                               "padding": "x" * pad}
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    async def attempt(records):
        try:
            await log.write_many(records)
            return "written"
        except OSError as error:
            return f"refused: {error.strerror}"

    async def main():
        outcome = {"first": await attempt([record(i) for i in range(3)])}
        # the disk fills: 200 bytes left
        resource.setrlimit(resource.RLIMIT_FSIZE, (log.current_file.stat().st_size + 200, hard))
        outcome["batch"] = await attempt([record(i, 30) for i in range(10, 20)])
        outcome["single"] = await attempt([record(30, 500)])
        outcome["small"] = await attempt([record(40)])
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space freed
        outcome["after"] = await attempt([record(50)])
        return outcome

    print(json.dumps(asyncio.run(main())))
    log.close()
""")


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, text=True, check=True
    )
    outcome = json.loads(done.stdout)
    assert outcome["first"] == outcome["small"] == outcome["after"] == "written"
    assert outcome["batch"].startswith("refused") and outcome["single"].startswith("refused")
    (path,) = tmp_path.glob("exposures-*.jsonl")
    text = path.read_text()
    assert text.endswith("\n")
    ids = [json.loads(line)["request_id"] for line in text.splitlines()]
    assert ids == ["r0", "r1", "r2", "r40", "r50"]  # nothing of the refused commits


def torn_folder(folder: Path, good: list[dict], fragment: str, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}-20260101T000000Z-0001.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in good) + fragment)
    return path


def test_readers_skip_an_incomplete_last_line_with_a_warning(tmp_path, caplog):
    exposures = [
        {"request_id": f"r{i}", "user_id": i, "post_ids": [1, 2], "latency_ms": 1.0}
        for i in range(4)
    ]
    torn = torn_folder(
        tmp_path, exposures, '{"request_id":"r9","user_id":9,"latency_ms":', "exposures"
    )
    torn_folder(tmp_path / "next", exposures[:1], "", "exposures").rename(
        tmp_path / "exposures-20260101T000000Z-0002.jsonl"
    )
    with caplog.at_level(logging.WARNING, logger="feedrank.log"):
        rows = duckdb.sql(f"SELECT user_id FROM ({query(tmp_path)}) ORDER BY 1").fetchall()
    assert [u for (u,) in rows] == [0, 0, 1, 2, 3]
    assert str(torn) in caplog.text and "incomplete" in caplog.text

    likes = [
        {"user_id": 7, "post_id": p, "action": "like", "timestamp": "2021-12-01T10:00:00"}
        for p in (3, 4)
    ]
    torn_folder(tmp_path / "events", likes, '{"user_id":7,"post_id":5,"act', "events")
    own_log = ExposureLog(
        tmp_path / "events", rotate_bytes=2**20, rotate_seconds=60, fsync=False, prefix="events"
    )
    assert LogFolder(own_log).load().post_id.tolist() == [3, 4]
    own_log.close()
    files = events.log_files(tmp_path / "events")
    assert duckdb.sql(f"SELECT count(*) FROM ({events.query(files)})").fetchall() == [(2,)]


def limited(server: BareServerProcess, file_bytes: int) -> BareServerProcess:
    """The server with a file-size limit: its logs' disk is full past `file_bytes`."""
    server.command = ["prlimit", f"--fsize={file_bytes}:", *server.command]
    return server.start()


def test_a_full_disk_refuses_whole_and_the_server_restarts_on_what_it_left(tiny_world, tmp_path):
    moment, user = last_moment(tiny_world), first_user(tiny_world)
    repository, log = built_repository(tiny_world), tmp_path / "log"
    server = BareServerProcess(tiny_world, repository, log, tmp_path / "server.out")
    with limited(server, 64 * 1024), httpx.Client(base_url=server.url, timeout=30.0) as client:
        shown = feed(client, user, later(moment, 60))
        flood = [like(user + 1 + i % 50, shown[i % len(shown)], moment) for i in range(2000)]
        refused = client.post("/feed/events", json=flood)
        assert refused.status_code == 503 and "events log" in refused.json()["error"]
        accepted = client.post("/feed/events", json=[like(user, shown[0], later(moment, 1))])
        assert accepted.status_code == 200
        answered = 1
        for _ in range(400):  # feeds until the exposure log's file is full
            status = client.get(
                "/post/recommendations/",
                params={"id": user, "time": later(moment, 60), "limit": 20},
            ).status_code
            assert status in (200, 503)
            if status == 503:
                break
            answered += 1
        assert status == 503
    for path in log.glob("*.jsonl"):
        assert path.read_text().endswith("\n") or path.stat().st_size == 0, path
    logged = [
        json.loads(line) for path in events.log_files(log) for line in path.read_text().splitlines()
    ]
    assert [(e["user_id"], e["post_id"]) for e in logged] == [(user, shown[0])]
    assert duckdb.sql(f"SELECT count(*) FROM ({query(log)})").fetchall() == [(answered,)]
    # a crash in the middle of a write: the server starts anyway and replays the good likes
    with (log / "events-99990101T000000Z-0001.jsonl").open("w") as torn:
        torn.write(json.dumps(like(user, shown[1], moment)) + "\n" + '{"user_id": 1, "po')
    (log / "exposures-99990101T000000Z-0001.jsonl").write_text('{"request_id": "x", "us')
    with (
        ServerProcess(tiny_world, repository, log) as restarted,
        httpx.Client(base_url=restarted.url, timeout=30.0) as client,
    ):
        assert not {shown[0], shown[1]} & set(feed(client, user, later(moment, 60)))
        for group in (True, False):  # users of both groups: the report compares them
            for other in [
                u for u in range(user + 1, user + 100) if (bucket(u, "feedrank") < 50) == group
            ][:2]:
                feed(client, other, later(moment, 60))
        assert "2 likes replayed" in restarted.logs()
        assert "incomplete" in restarted.logs()
    # the analysis reads the folder too, warning about each incomplete line
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedrank",
            "ab",
            "report",
            "--log",
            str(log),
            "--events",
            str(log),
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    assert "Traceback" not in report.stderr
    assert all(
        f"{name}: the last line is incomplete" in report.stderr
        for name in (
            log / "exposures-99990101T000000Z-0001.jsonl",
            log / "events-99990101T000000Z-0001.jsonl",
        )
    )
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert sum(g["exposures"] for g in summary["groups"]) == answered + 5
    # and so does the README's DuckDB query
    documented = (
        f"SELECT count(*) FROM read_json_auto('{log}/exposures-*.jsonl', "
        "format='newline_delimited', ignore_errors=true) WHERE request_id IS NOT NULL"
    )
    assert duckdb.sql(documented).fetchall() == [(answered + 5,)]


@pytest.fixture(autouse=True)
def _prlimit_exists():
    assert subprocess.run(["prlimit", "--version"], capture_output=True).returncode == 0
