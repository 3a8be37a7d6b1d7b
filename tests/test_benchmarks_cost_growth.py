"""The cost-growth benchmark still works (`--quick`): every scorer measured at every point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "cost_growth.py"


def test_cost_growth_quick(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    result = json.loads((tmp_path / "cost_growth-quick.json").read_text())
    assert [p["posts"] for p in result["posts"]] == result["plan"]["posts"]
    assert [p["trees"] for p in result["trees"]] == result["plan"]["trees"]
    for point in result["posts"] + result["trees"]:
        assert set(point["median_ms"]) == {"catboost", "plain_onnx", "fastpath"}
        assert all(ms > 0 for ms in point["median_ms"].values())
    assert (tmp_path / "cost_growth-quick.png").stat().st_size > 0
