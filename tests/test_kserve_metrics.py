"""The metrics API the feed server records through, rendered as Prometheus text."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from feedrank.server.batching import Scored
from feedrank.server.metrics import Metrics
from feedrank.server.repository import ModelRepository

from model_repo_factory import make_repository


def samples(metrics: Metrics) -> dict[tuple, float]:
    """Parsed by prometheus_client's own parser (which names every counter sample `*_total`,
    Triton's unsuffixed counters included)."""
    text = metrics.render().decode()
    return {
        (s.name.removesuffix("_total"), tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_batch_of_feed_requests_counts_as_one_execution(tmp_path):
    make_repository(tmp_path, {"control": [1, 2]})
    repository = ModelRepository(tmp_path)
    repository.load_all()
    metrics = Metrics(repository)
    for _ in range(3):
        metrics.observe_scoring("control", 2, Scored(np.zeros(4), 1.5, 4.0, 3))
    metrics.observe_feed("control", "control", 2, 200, 0.01)
    metrics.observe_feed("", "", 0, 422, 0.001)
    values = samples(metrics)
    key = (("model", "control"), ("version", "2"))
    assert values[("nv_inference_request_success", key)] == 3
    assert values[("nv_inference_count", key)] == 3
    assert values[("nv_inference_exec_count", key)] == 1
    assert values[("nv_inference_queue_duration_us", key)] == 4500
    assert values[("nv_inference_compute_infer_duration_us", key)] == 12000
    assert values[("feedrank_batch_size_bucket", (("le", "2.0"),) + key)] == 0
    assert values[("feedrank_batch_size_bucket", (("le", "4.0"),) + key)] == 3
    assert (
        values[
            (
                "feedrank_requests",
                (
                    ("endpoint", "feed"),
                    ("group", "control"),
                    ("model", "control"),
                    ("status", "200"),
                    ("version", "2"),
                ),
            )
        ]
        == 1
    )
    assert (
        values[
            (
                "feedrank_requests",
                (
                    ("endpoint", "feed"),
                    ("group", ""),
                    ("model", ""),
                    ("status", "422"),
                    ("version", "0"),
                ),
            )
        ]
        == 1
    )
    assert values[("feedrank_queue_duration_seconds_count", (("endpoint", "feed"),) + key)] == 3
    assert values[("feedrank_model_versions_loaded", (("model", "control"),))] == 2
