"""Features of the moment of a request (or of a training example): hour, day of week, month."""

from __future__ import annotations

import numpy as np

COLUMNS = ("time_hour", "time_dow", "time_month")


def time_block(times: np.ndarray) -> dict[str, np.ndarray]:
    t = np.asarray(times).astype("datetime64[us]")
    days = t.astype("datetime64[D]")
    hour = (t - days).astype("timedelta64[h]").astype(np.int64)
    # 1970-01-01 was a Thursday: shift so that Monday is 0
    dow = (days.astype(np.int64) + 3) % 7
    month = t.astype("datetime64[M]").astype(np.int64) % 12 + 1
    return dict(zip(COLUMNS, (hour, dow, month)))
