"""Ranking by preference × exposure.

A model predicts P(like | shown): what a user likes of what the feed shows. Whether a post is
liked at all in a log also depends on whether the feed showed it, and on a news feed that is
most of the story: the posts being shown this hour are the ones read this hour. A version may
therefore rank by

    log P(like | shown) + alpha × log(the post's share of recent views + FLOOR)

(at alpha 1, the log of P(shown and liked)) with the window and alpha chosen by `feedrank
build` on the validation window's logged hit rate (alpha 0, pure preference, unless exposure
helps there significantly). Exposure imitates the feed that wrote the log; only an A/B test
tells whether a live feed gains from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

FLOOR = 0.01  # per mille of the window's views: less than one view on any real feed
STEP = np.timedelta64(1, "m")  # shares as of the request's minute
# an hour for news, a day, a week and a month for catalogues whose audience moves slowly (films,
# products): what the log's feed showed most lately, over the horizon that predicts it
CHOICES = tuple(
    (f"recent_view_share_{hours}h", (0.5, 1.0, 1.5, 2.0, 3.0)) for hours in (1, 24, 168, 720)
)


@dataclass(frozen=True)
class Exposure:
    column: str | None = None  # a `recent` column: the post's share of recent views
    alpha: float = 0.0
    # how P(like | shown) enters: "log" (P(shown and liked) at alpha 1); versions whose
    # metadata names no scale were chosen on the logit, and keep ranking that way
    scale: Literal["log", "logit"] = "log"

    @property
    def active(self) -> bool:
        return self.column is not None and self.alpha != 0.0

    def scores(self, probabilities: np.ndarray, shares: np.ndarray | None) -> np.ndarray:
        """Ranking scores from P(like | shown) and each post's share of recent views."""
        if not self.active or shares is None:
            return probabilities
        p = np.clip(probabilities, 1e-12, 1 - 1e-12)
        preference = np.log(p) if self.scale == "log" else np.log(p / (1 - p))
        return preference + self.alpha * np.log(shares + FLOOR)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Exposure:
        return cls(**{"scale": "logit", **data}) if data else cls()


def candidates() -> list[Exposure]:
    """Pure preference first, then every window and alpha the build tries."""
    return [Exposure()] + [
        Exposure(column, alpha) for column, alphas in CHOICES for alpha in alphas
    ]
