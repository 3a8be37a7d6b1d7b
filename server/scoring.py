"""Scoring a published version's candidates offline exactly as the feed does.

The feed's path from a request to probabilities: the version's declared ranker (config.pbtxt's
`ranker` parameter, docs/model-server.md, loaded by the repository) ranks the structured
requests its `ModelInputs` gather (`Backend.rank`, called by the batcher). `feedrank evaluate`
and the offline A/B replay go through the same backend and inputs here, so what they measure is
what the server ranks with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.model_config import read_config
from feedrank.server.backends.base import feed_backend_name, load_backend


class VersionScorer:
    """A published version as the feed ranks with it: its declared ranker and its inputs.

    Each request's snapshot is prepared before it is scored (the fast path builds the hour's
    ranker, in well under a second on the default world), so every request takes the same path
    on every run; the feed instead answers from the plain model while a ranker builds."""

    def __init__(self, online: OnlineFeatures, version_dir: Path, *, threads: int = 1) -> None:
        config = read_config(Path(version_dir).parent)
        self.backend = load_backend(
            version_dir, config, threads=threads, name=feed_backend_name(config)
        )
        self.inputs = ModelInputs.from_version_dir(online, version_dir)

    def probabilities(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """float64 [requests, candidates]: P(like) in `inputs.post_ids` order."""
        requests = [self.inputs.request(u, at) for u, at in zip(users.tolist(), times)]
        for request in requests:
            self.backend.prepare(request.snapshot)
        return np.stack(self.backend.rank(requests))
