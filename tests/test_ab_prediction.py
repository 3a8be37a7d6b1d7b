"""ab.prediction: when an A/B agrees with, or confirms, the offline replay's prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from feedrank.ab.prediction import Check, load_prediction


def t(difference: float, half: float, p: float, df: float = 1e6) -> dict:
    """A t-test result with a 95% interval of half-width `half` (large df: half = 1.96 se)."""
    return {
        "difference": difference,
        "low": difference - half,
        "high": difference + half,
        "p_value": p,
        "df": df,
    }


@pytest.mark.parametrize(
    ("predicted", "found", "agrees", "confirmed"),
    [
        (t(0.01, 0.002, 1e-6), t(0.012, 0.008, 0.003), True, True),
        (t(0.01, 0.002, 1e-6), t(0.003, 0.008, 0.45), True, False),  # underpowered A/B
        (t(0.01, 0.002, 1e-6), t(-0.012, 0.008, 0.003), False, False),  # wrong sign
        (t(0.0, 0.001, 1.0), t(0.0005, 0.0045, 0.8), True, False),  # nothing to find
        # just outside the A/B's interval, yet within the two estimates' combined margin
        (t(-0.0067, 0.0034, 1e-4), t(-0.0022, 0.0031, 0.17), True, False),
    ],
)
def test_agreement_and_confirmation(predicted, found, agrees, confirmed) -> None:
    check = Check("hit_rate", predicted, found)
    assert (check.agrees, check.confirmed) == (agrees, confirmed)
    assert check.as_dict()["agrees"] == agrees


def test_gap_in_standard_errors_matches_a_direct_computation() -> None:
    predicted, found = t(0.010, 0.004, 1e-6, df=999), t(0.002, 0.006, 0.5, df=5000)
    se = np.hypot(
        *(0.5 * (x["high"] - x["low"]) / stats.t.ppf(0.975, x["df"]) for x in (predicted, found))
    )
    assert Check("ctr", predicted, found).gap_z == pytest.approx((0.002 - 0.010) / se, rel=1e-12)


def repository(tmp_path: Path, evaluated: dict[str, int], replay: dict | None) -> Path:
    (tmp_path / "router.toml").write_text(
        'salt = "s"\n\n[[groups]]\nname = "control"\nbuckets = [0, 49]\nmodel = "control"\n'
        'version = 1\n\n[[groups]]\nname = "test"\nbuckets = [50, 99]\nmodel = "test"\n'
        "version = 2\n"
    )
    folder = tmp_path / "test" / "2"
    folder.mkdir(parents=True)
    rows = [{"ranker": name, "version": v} for name, v in evaluated.items()]
    (folder / "evaluation.json").write_text(json.dumps({"rows": rows, "replay": replay}))
    return tmp_path


def test_the_prediction_must_be_for_the_served_versions(tmp_path: Path) -> None:
    replay, why = load_prediction(repository(tmp_path, {"control": 1, "test": 1}, {"x": 1}))
    assert replay is None and "router serves" in why


def test_an_evaluation_without_replay_says_how_to_make_one(tmp_path: Path) -> None:
    replay, why = load_prediction(repository(tmp_path, {"control": 1, "test": 2}, None))
    assert replay is None and "--replay-users" in why


def test_the_served_versions_prediction_is_read(tmp_path: Path) -> None:
    replay, source = load_prediction(repository(tmp_path, {"control": 1, "test": 2}, {"x": 1}))
    assert replay == {"x": 1} and source.endswith("test/2/evaluation.json")


def test_no_evaluation_is_named(tmp_path: Path) -> None:
    root = repository(tmp_path, {}, None)
    (root / "test" / "2" / "evaluation.json").unlink()
    replay, why = load_prediction(root)
    assert replay is None and "feedrank evaluate" in why


def test_an_aa_router_has_no_prediction(tmp_path: Path) -> None:
    root = repository(tmp_path, {"control": 1, "test": 2}, {"x": 1})
    text = (
        (root / "router.toml")
        .read_text()
        .replace('model = "test"\nversion = 2', 'model = "control"\nversion = 1')
    )
    (root / "router.toml").write_text(text)
    replay, why = load_prediction(root)
    assert replay is None and "compares the models control and test" in why
