"""The benchmark scripts still work: each runs in its `--quick` mode on a tiny built world.

Timings are written, never asserted (machines here are shared and noisy); what is asserted is
that every level ran without errors and that both servers answered alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from feed_serving import built_repository

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def run_quick(script: str, world: Path, out: Path) -> dict:
    """benchmarks/<script>.py --quick on the world's built repository; its JSON result."""
    subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / f"{script}.py"),
            "--world",
            str(world),
            "--repository",
            str(built_repository(world)),
            "--quick",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return json.loads((out / f"{script}-quick.json").read_text())


def test_end_to_end_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("end_to_end", tiny_world, tmp_path)
    assert {(r["server"], r["concurrency"]) for r in result["runs"]} == {
        (s, c) for s in ("feedrank", "course") for c in (1, 4)
    }
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in result["runs"])
    assert result["same_answers"]["checked"] == 40 and not result["same_answers"]["different"]
    assert all(mb > 50 for mb in result["memory_mb"].values())
    assert (tmp_path / "end_to_end-quick.png").stat().st_size > 0


def test_scale_out_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("scale_out", tiny_world, tmp_path)
    setups = ("1 process", "2 workers", "ray, 2 replicas")
    assert {(r["setup"], r["concurrency"]) for r in result["runs"]} == {
        (s, c) for s in setups for c in (1, 4)
    }
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in result["runs"])
    # two processes hold the state twice; Ray adds its own processes
    memory = result["memory_mb"]
    assert memory["ray, 2 replicas"] > memory["2 workers"] > memory["1 process"] > 50
    assert (tmp_path / "scale_out-quick.png").stat().st_size > 0


def test_postgres_import_quick(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "postgres_import.py"), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=BENCHMARKS,
    )
    result = json.loads((tmp_path / "postgres_import-quick.json").read_text())
    (run,) = result["runs"]
    assert run["rows_equal"] and run["feed_rows"] > 20_000 and run["peak_rss_mb"] > 0


def test_events_flood_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("events_flood", tiny_world, tmp_path)
    assert len(result["flood"]["batch_ms"]) == 2 and result["flood"]["feed"]["n"] > 0
    assert result["alone"]["loop_lag"]["observations"] > 0
    assert result["start_up"]["replay"]["ready_s"] > 0
    assert (tmp_path / "events_flood-quick.png").stat().st_size > 0


def test_reliability_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("reliability", tiny_world, tmp_path)
    assert result["kill_9"]["answered"] >= 100 and result["kill_9"]["lost"] == 0
    disk = result["full_disk"]
    assert disk["lost"] == 0 and disk["batch_status"] == 503 and disk["batch_bytes_left"] == 0
    assert not disk["torn_files"] and disk["statuses"].get("503", 0) > 0
    assert result["slow_clients"]["attacked"]["n"] > 0


def test_course_scale_quick(tmp_path: Path) -> None:
    """The course-scale benchmark on a tiny world: generated into its cache, built from
    scratch, served, loaded."""
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "course_scale.py"), "--quick"]
        + ["--cache", str(tmp_path / "cache"), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=BENCHMARKS,
    )
    result = json.loads((out / "course_scale-quick.json").read_text())
    build, serve = result["build"], result["serve"]
    assert build["peak_rss_mb"] > 50 and build["wall_s"] > 0
    assert "history indexes" in build["feature_steps_s"]
    assert any("published version 1" in x["line"] for x in build["lines"])
    assert serve["ready_s"] > 0 and serve["peak_mb"] >= serve["after_load_mb"]["VmRSS"] > 50
    assert [r["concurrency"] for r in serve["runs"]] == [1, 16]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in serve["runs"])
    assert len(serve["memory"]) > 5
    assert (out / "course_scale-quick.png").stat().st_size > 0


def test_side_by_side_quick(tiny_world: Path, tmp_path: Path) -> None:
    """This checkout against itself: both servers answer every round without errors."""
    result = run_quick("side_by_side", tiny_world, tmp_path)
    for side in ("before", "after"):
        levels = result[side]["levels"]
        assert set(levels) == {"1", "4"}
        assert all(v["throughput_rps"] > 0 and v["errors"] == 0 for v in levels.values())
        assert result[side]["ready_s"] > 0 and result[side]["memory_mb"]["VmRSS"] > 50
    assert (tmp_path / "side_by_side-quick.png").stat().st_size > 0


def test_text_pipeline_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("text_pipeline", tiny_world, tmp_path)
    assert result["texts"] == 60
    for model in ("control", "test"):
        measured = result["models"][model]
        assert measured["columns"] > 6 and measured["catalogue_s"] > 0
        assert measured["one_post"]["runs"] == 200 and measured["batch_of_100"]["runs"] == 10
    float32, int8 = result["precisions"]["float32"], result["precisions"]["int8"]
    assert float32["cosine_to_float32_min"] > 0.99999 and float32["seconds"] > 0
    assert 0.99 <= int8["cosine_to_float32_min"] < 1 - 1e-6 and int8["seconds"] > 0
    assert (tmp_path / "text_pipeline-quick.png").stat().st_size > 0


def test_posts_online_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("posts_online", tiny_world, tmp_path)
    assert result["single"]["n"] == 5 and result["batch"]["posts_per_request"] == 100
    assert result["streaming"]["posting"]["posts"] >= 20
    assert result["streaming"]["posting"]["errors"] == 0
    for run in ("quiet", "streaming"):
        assert result[run]["feed"]["requests"] > 0 and result[run]["feed"]["errors"] == 0
    assert (tmp_path / "posts_online-quick.png").stat().st_size > 0


def test_learnable_ceiling_quick(tiny_world: Path, tmp_path: Path) -> None:
    result = run_quick("learnable_ceiling", tiny_world, tmp_path)
    rows = result["first_feed"]["rows"]
    assert {"published control (version 1)", "published test (version 1)"} <= set(rows)
    # the oracle's five most likely posts maximise 1 − Π(1 − p) in every session
    best = rows["oracle"]["simulated_hit_rate"]
    assert all(r["simulated_hit_rate"] <= best + 1e-12 for r in rows.values())
    week = result["week"]
    assert week["users"] > 0 and set(week["means"]) == {
        "user terms: none",
        "user terms: topic",
        "user terms: topic + sub-theme + tone",
        "oracle",
    }
    assert all(0 <= m["hit_rate"] <= 1 for m in week["means"].values())
    assert (tmp_path / "learnable_ceiling-quick.png").stat().st_size > 0
