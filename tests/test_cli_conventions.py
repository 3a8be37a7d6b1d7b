"""What a user expects of the command line and the server's logs: --version, help with every
option's default and an example, results on stdout and progress on stderr, errors as one
unwrapped paragraph, settings errors by key, timestamped or JSON server logs, an opt-in access
log, and x-request-id on every response matching the exposure log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version

import duckdb
import httpx
import pytest

from feedrank.cli import build_parser
from feedrank.server.exposure_log import query

from feed_serving import ServerProcess, built_repository, first_user

COMMANDS = [
    ["world"],
    ["ab"],
    ["world", "generate"],
    ["world", "import"],
    ["world", "describe"],
    ["world", "truth"],
    ["build"],
    ["evaluate"],
    ["serve"],
    ["ab", "report"],
    ["ab", "simulate"],
]


def feedrank(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "feedrank", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_version():
    done = feedrank("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"feedrank {version('feedrank')}"


def subparser(path: list[str]):
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_option_has_help_a_default_when_it_has_one_and_an_example(path):
    parser = subparser(path)
    for action in parser._actions:
        if action.dest == "help" or action.__class__.__name__ == "_SubParsersAction":
            continue  # sub-commands carry their help in their own parsers
        assert action.help, f"{' '.join(path)} {action.dest}: no help"
        assert "`" not in action.help and "default from settings" not in action.help
    text = parser.format_help()
    assert "example" in text and "feedrank " + " ".join(path) in text.split("example")[-1]
    options = text.split("options:", 1)[1].split("\n\n", 1)[0]
    entries = {
        m[1]: "".join(m[0].split())
        for m in re.finditer(r"^  (-[-\w]+).*?(?=^  -|\Z)", options, re.M | re.S)
    }
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False) and action.nargs != 0:
            entry = entries[action.option_strings[0]]
            # argparse may wrap inside a value (at a hyphen): compare without whitespace
            assert f"(default:{action.default})".replace(" ", "") in entry, (path, entry)


def test_results_on_stdout_progress_on_stderr_only_when_asked(tmp_path):
    quiet = feedrank(
        "world",
        "generate",
        "--out",
        str(tmp_path / "a"),
        "--users",
        "200",
        "--posts",
        "40",
        "--views",
        "5000",
    )
    assert quiet.returncode == 0, quiet.stderr
    bar = re.compile("━")
    assert not bar.search(quiet.stdout) and not bar.search(quiet.stderr)
    shown = feedrank(
        "--progress",
        "world",
        "generate",
        "--out",
        str(tmp_path / "b"),
        "--users",
        "200",
        "--posts",
        "40",
        "--views",
        "5000",
    )
    assert shown.returncode == 0 and bar.search(shown.stderr) and not bar.search(shown.stdout)
    described = feedrank("world", "describe", str(tmp_path / "a"))
    assert described.returncode == 0 and "users" in described.stdout
    assert "…" not in described.stdout  # in a pipe, tables are whole, not cut to 80 columns


def test_errors_are_one_unwrapped_paragraph(tmp_path):
    missing = tmp_path / ("a-rather-long-folder-name-" * 3) / "world"
    done = feedrank("build", "--world", str(missing), "--repository", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"feedrank world generate --out {missing}" in done.stderr


def test_settings_errors_name_the_key_the_value_and_the_rule(tmp_path):
    done = feedrank(
        "serve",
        "--world",
        str(tmp_path),
        "--repository",
        str(tmp_path),
        env={"FEEDRANK_SERVER__PORT": "99999", "FEEDRANK_BUILD__DEPTH": "x"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "server.port = '99999'" in done.stderr and "less than or equal to 65535" in done.stderr
    assert "build.depth = 'x'" in done.stderr and "pydantic.dev" not in done.stderr


def test_request_ids_logs_and_access_log(tiny_world, tmp_path):
    log = tmp_path / "log"
    with (
        ServerProcess(
            tiny_world, built_repository(tiny_world), log, "--log-format", "json", "--access-log"
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        user = first_user(tiny_world)
        mine = client.get(
            "/post/recommendations/", params={"id": user}, headers={"x-request-id": "client-7.a"}
        )
        fresh = client.get(
            "/post/recommendations/",
            params={"id": user},
            headers={"x-request-id": "not ok/" + "x" * 80},
        )
        other = client.get("/router")
        metrics = client.get("/metrics").text
        served = client.get("/v2").json()
    assert f'feedrank_build_info{{version="{version("feedrank")}"}} 1.0' in metrics
    assert served["version"] == version("feedrank")
    assert mine.headers["x-request-id"] == mine.json()["request_id"] == "client-7.a"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    assert fresh.json()["request_id"] == fresh.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", other.headers["x-request-id"])
    logged = {r for (r,) in duckdb.sql(f"SELECT request_id FROM ({query(log)})").fetchall()}
    assert logged == {"client-7.a", fresh.headers["x-request-id"]}
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(
        line["logger"] == "feedrank.server" and "feed ready" in line["message"] for line in lines
    )
    accessed = [line for line in lines if line["logger"] == "feedrank.access"]
    # the readiness polls of GET /router come first
    assert [(a["method"], a["path"], a["status"], a["request_id"]) for a in accessed][-5:-2] == [
        ("GET", "/post/recommendations/", 200, "client-7.a"),
        ("GET", "/post/recommendations/", 200, fresh.headers["x-request-id"]),
        ("GET", "/router", 200, other.headers["x-request-id"]),
    ]


def test_text_logs_carry_iso_timestamps_and_levels(tiny_world, tmp_path):
    with ServerProcess(tiny_world, built_repository(tiny_world), tmp_path / "log") as server:
        pass
    ready = next(line for line in server.logs().splitlines() if "feed ready" in line)
    assert re.match(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00 INFO feedrank.server: ", ready
    )
