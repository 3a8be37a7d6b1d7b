"""`ab report` on the terminal: readable at 80 and 120 columns, never `nan`, and plain notes
when there is nothing to compare."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from feedrank.ab.report import analyse, print_report


def per_user(likes: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    exposures = rng.integers(1, 6, n)
    liked = rng.binomial(exposures, 0.4) if likes else np.zeros(n, int)
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "exp_group": np.where(np.arange(n) % 2, "test", "control"),
            "exposures": exposures,
            "hits": liked,
            "liked_shown": liked,
            "shown": exposures * 5,
            "likes": liked,
        }
    )


def printed(report, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    print_report(report, console)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_tables_fit_the_terminal(width):
    report = analyse(
        per_user(True), pd.DataFrame(), window_s=3600, shares={"control": 0.5, "test": 0.5}
    )
    text = printed(report, width)
    assert max(len(line) for line in text.splitlines()) <= width
    for word in (
        "hit rate@5",
        "likes per user",
        "CTR of shown posts",
        "95% CI",
        "MDE 80%",
        "bootstrap 95% CI",
        "p-value",
    ):
        assert word in text
    assert "…" not in text  # no cell cut short


def test_nothing_to_compare_is_said_plainly_and_never_nan():
    report = analyse(
        per_user(False),
        pd.DataFrame(),
        window_s=3600,
        shares={"control": 0.34, "test": 0.33, "other": 0.33},
    )
    text = printed(report, 100)
    assert "nan" not in text.lower()
    assert "no like followed any exposure within 3600 s" in text
    assert "group 'other' is in the split but has no exposures" in text
    assert "n/a" in text
