"""Proof that an exported ONNX model ranks like the CatBoost model it came from.

Two checks, both required before a version is published: probabilities on at least 10,000 rows
agree within `tolerance`, and full-catalogue rankings of sampled requests put the same posts in
the top 5 (positions may only differ between posts whose CatBoost scores tie within `tolerance`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from catboost import CatBoostClassifier

from feedrank.errors import FeedrankError
from feedrank.export.onnx_export import OnnxScorer

TOLERANCE = 1e-5
MIN_ROWS = 10_000
TOP_K = 5


@dataclass(frozen=True)
class ParityReport:
    rows: int
    max_abs_diff: float
    tolerance: float
    requests: int
    top5_mismatches: int

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top5_mismatches == 0

    def as_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed, "top_k": TOP_K}


def top_k(scores: np.ndarray, post_ids: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Indices of the k best posts; ties broken by post id so the order is total."""
    return np.lexsort((post_ids, -scores))[:k]


def same_top_k(
    reference: np.ndarray, candidate: np.ndarray, post_ids: np.ndarray, tolerance: float
) -> bool:
    mine, theirs = top_k(reference, post_ids), top_k(candidate, post_ids)
    tied = np.abs(reference[mine] - reference[theirs]) <= tolerance
    return bool(np.all((mine == theirs) | tied))


def check_parity(
    model: CatBoostClassifier,
    onnx_path: Path,
    rows: np.ndarray,
    requests: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    threads: int,
    tolerance: float = TOLERANCE,
) -> ParityReport:
    """`requests` yields (feature matrix of every candidate post, their post ids)."""
    scorer = OnnxScorer(onnx_path, threads=threads)
    diff = np.abs(scorer.like_probability(rows) - model.predict_proba(rows)[:, 1])
    checked = mismatches = 0
    for matrix, post_ids in requests:
        checked += 1
        mismatches += not same_top_k(
            model.predict_proba(matrix)[:, 1], scorer.like_probability(matrix), post_ids, tolerance
        )
    return ParityReport(
        rows=len(rows),
        max_abs_diff=float(diff.max(initial=0.0)),
        tolerance=tolerance,
        requests=checked,
        top5_mismatches=mismatches,
    )


def require_parity(name: str, report: ParityReport) -> None:
    if report.rows < MIN_ROWS:
        raise FeedrankError(f"{name}: parity needs at least {MIN_ROWS} rows, got {report.rows}")
    if not report.passed:
        raise FeedrankError(
            f"{name}: ONNX export differs from CatBoost, not published: max |p_onnx - p_catboost|"
            f" = {report.max_abs_diff:.3g} (tolerance {report.tolerance:g}), top-{TOP_K} differs"
            f" on {report.top5_mismatches} of {report.requests} sampled requests"
        )
