"""The exposure log on its own: group commit, rotation, and one DuckDB query over the folder."""

from __future__ import annotations

import asyncio
import errno
import os

import duckdb
import pytest

from feedrank.server.exposure_log import ExposureLog, query


def record(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "server_time": "2026-01-01T00:00:00.000001+00:00",
        "requested_time": "2021-12-01T10:00:00",
        "user_id": i,
        "exp_group": "test",
        "model": "test",
        "version": 1,
        "post_ids": [i, i + 1, i + 2],
        "fallback": i % 2 == 0,
        "latency_ms": 1.5,
    }


async def write_all(log: ExposureLog, n: int) -> None:
    await asyncio.gather(*(log.write(record(i)) for i in range(n)))


def test_concurrent_writes_are_all_committed_and_read_back_typed(tmp_path):
    log = ExposureLog(tmp_path, rotate_bytes=1 << 20, rotate_seconds=3600, fsync=True)
    asyncio.run(write_all(log, 500))
    # every awaited write is already on disk, before close()
    rows = duckdb.sql(
        f"SELECT user_id, post_ids, fallback, requested_time FROM ({query(tmp_path)})"
        " ORDER BY user_id"
    ).fetchall()
    log.close()
    assert [r[0] for r in rows] == list(range(500))
    assert rows[7][1] == [7, 8, 9] and rows[7][2] is False and rows[8][2] is True
    assert str(rows[0][3]) == "2021-12-01 10:00:00"


def test_rotation_by_size_keeps_every_record(tmp_path):
    log = ExposureLog(tmp_path, rotate_bytes=2048, rotate_seconds=3600, fsync=False)

    async def one_by_one() -> None:
        for i in range(100):
            await log.write(record(i))

    asyncio.run(one_by_one())
    log.close()
    files = sorted(tmp_path.glob("exposures-*.jsonl"))
    assert len(files) > 5
    assert all(f.stat().st_size < 2048 + 400 for f in files)
    count = duckdb.sql(f"SELECT count(DISTINCT request_id) FROM ({query(tmp_path)})").fetchall()
    assert count == [(100,)]


def test_rotation_by_age_and_a_second_log_never_share_a_file(tmp_path):
    first = ExposureLog(tmp_path, rotate_bytes=1 << 20, rotate_seconds=0.001, fsync=False)
    second = ExposureLog(tmp_path, rotate_bytes=1 << 20, rotate_seconds=3600, fsync=False)

    async def interleave() -> None:
        for i in range(20):
            await first.write(record(i))
            await asyncio.sleep(0.002)
            await second.write(record(100 + i))

    asyncio.run(interleave())
    first.close()
    second.close()
    assert len(list(tmp_path.glob("exposures-*.jsonl"))) >= 10
    ids = duckdb.sql(f"SELECT user_id FROM ({query(tmp_path)}) ORDER BY 1").fetchall()
    assert [i for (i,) in ids] == list(range(20)) + list(range(100, 120))


def test_a_failed_write_reaches_the_waiting_request(tmp_path):
    log = ExposureLog(tmp_path, rotate_bytes=1 << 20, rotate_seconds=3600, fsync=True)
    os.close(log._fd)
    log._fd = os.open("/dev/full", os.O_WRONLY)  # every write fails: ENOSPC, a full disk

    async def write() -> None:
        await log.write(record(1))

    with pytest.raises(OSError) as error:
        asyncio.run(write())
    log.close()
    assert error.value.errno == errno.ENOSPC
