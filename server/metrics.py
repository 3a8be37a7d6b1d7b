"""`GET /metrics` in Prometheus text format.

Two families:
- Triton's per-model counters, same names, labels {model, version} and units as Triton's
  (`nv_inference_request_success`, ..., durations cumulative in microseconds). Triton exposes
  them as counters without the `_total` suffix that prometheus_client would add, so this module
  renders them itself.
- feedrank's own, through prometheus_client: requests by endpoint, group, model, version and
  status; queue / compute / total latency histograms; the batch size each request was scored
  in; loaded versions per model; the event loop's lag (how long handlers block it); live likes.

The feed server records through `observe_feed` (one per answered feed request) and
`observe_scoring` (one per scored request); the KServe routes through `observe_infer`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

# (name, help) in Triton's order; durations in microseconds, as Triton counts them
TRITON_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
    ("nv_inference_exec_count", "Number of model executions performed"),
    ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds"),
    ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds"),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds",
    ),
)


class _TritonCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], dict[str, float]] = defaultdict(
            lambda: dict.fromkeys([name for name, _ in TRITON_COUNTERS], 0.0)
        )

    def add(self, model: str, version: int, **increments: float) -> None:
        with self._lock:
            values = self._values[(model, str(version))]
            for key, amount in increments.items():
                values[f"nv_inference_{key}"] += amount

    def render(self) -> str:
        with self._lock:
            snapshot = {key: dict(values) for key, values in sorted(self._values.items())}
        lines = []
        for name, doc in TRITON_COUNTERS:
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter"]
            lines += [
                f'{name}{{model="{model}",version="{version}"}} {values[name]:.0f}'
                for (model, version), values in snapshot.items()
            ]
        return "\n".join(lines) + "\n"


class _LoadedVersions:
    """Read from the repository at scrape time: `feedrank_model_versions_loaded{model}`,
    `feedrank_model_ranker{model, version, ranker}` (1 per loaded version), and
    `feedrank_ranking_path_requests{model, version, path}` for backends with several paths (the
    fast path's "fast" and "plain" while its ranker builds)."""

    def __init__(self, repository: Any) -> None:
        self.repository = repository

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        loaded = GaugeMetricFamily(
            "feedrank_model_versions_loaded", "Model versions loaded and serving", labels=["model"]
        )
        rankers = GaugeMetricFamily(
            "feedrank_model_ranker",
            "The backend ranking feeds with each loaded version",
            labels=["model", "version", "ranker"],
        )
        paths = CounterMetricFamily(
            "feedrank_ranking_path_requests",
            "Feed requests scored, by the backend's internal path",
            labels=["model", "version", "path"],
        )
        versions = self.repository.loaded()
        for model in sorted({v.model for v in versions}):
            loaded.add_metric([model], sum(v.model == model for v in versions))
        for version in versions:
            rankers.add_metric([version.model, str(version.version), version.backend.name], 1)
            for path, count in version.backend.ranking_paths().items():
                paths.add_metric([version.model, str(version.version), path], count)
        yield loaded
        yield rankers
        yield paths


class Metrics:
    def __init__(self, repository: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._triton = _TritonCounters()
        labels = ["endpoint", "model", "version"]
        self.requests = Counter(
            "feedrank_requests",
            "Answered requests",
            [*labels, "group", "status"],
            registry=self.registry,
        )
        self.queue = Histogram(
            "feedrank_queue_duration_seconds",
            "Wait before the backend call started",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute = Histogram(
            "feedrank_compute_duration_seconds",
            "Feature filling and the backend call",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.total = Histogram(
            "feedrank_request_duration_seconds",
            "Whole request, arrival to answer",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "feedrank_batch_size",
            "Requests in the backend call that scored each request",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        Info("feedrank_build", "The feedrank release serving", registry=self.registry).info(
            {"version": package_version("feedrank")}
        )
        self.loop_lag = Histogram(
            "feedrank_event_loop_lag_seconds",
            "How late the event loop woke a timer: time it was blocked",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.live_likes = Gauge(
            "feedrank_live_likes",
            "Likes posted since the feature snapshot, held for exclusion",
            registry=self.registry,
        )
        if repository is not None:
            self.registry.register(_LoadedVersions(repository))

    def observe_infer(
        self,
        model: str,
        version: int,
        *,
        ok: bool,
        queue_s: float = 0.0,
        compute_s: float = 0.0,
        total_s: float = 0.0,
    ) -> None:
        """One KServe v2 infer request (one model execution when it got that far)."""
        if ok:
            self._triton.add(
                model,
                version,
                request_success=1,
                count=1,
                exec_count=1,
                request_duration_us=total_s * 1e6,
                queue_duration_us=queue_s * 1e6,
                compute_infer_duration_us=compute_s * 1e6,
            )
            self._phases("infer", model, version, queue_s, compute_s)
        else:
            self._triton.add(model, version, request_failure=1)
        self._finish("infer", model, version, "", "ok" if ok else "error", total_s)

    def observe_scoring(self, model: str, version: int, scored: Any) -> None:
        """One feed request scored; `scored` has queue_ms, compute_ms and batch_size
        (feedrank.server.batching.Scored)."""
        queue_s, compute_s = scored.queue_ms / 1e3, scored.compute_ms / 1e3
        self._triton.add(
            model,
            version,
            request_success=1,
            count=1,
            exec_count=1 / scored.batch_size,
            request_duration_us=(queue_s + compute_s) * 1e6,
            queue_duration_us=queue_s * 1e6,
            compute_infer_duration_us=compute_s * 1e6,
        )
        self._phases("feed", model, version, queue_s, compute_s)
        self.batch.labels(model, str(version)).observe(scored.batch_size)

    def observe_feed(
        self, group: str, model: str, version: int, status: int | str, total_s: float
    ) -> None:
        """One answered feed request (any status; model "" when none was resolved)."""
        self._finish("feed", model, version, group, str(status), total_s)

    def observe_events(self, status: int, total_s: float) -> None:
        """One `POST /feed/events` request."""
        self._finish("events", "", 0, "", str(status), total_s)

    async def watch_loop(self, interval_s: float = 0.05) -> None:
        """Observe the event loop's lag until cancelled: a handler that blocks the loop delays
        every timer by as long as it runs."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval_s)
            self.loop_lag.observe(max(0.0, loop.time() - start - interval_s))

    def _phases(
        self, endpoint: str, model: str, version: int, queue_s: float, compute_s: float
    ) -> None:
        self.queue.labels(endpoint, model, str(version)).observe(queue_s)
        self.compute.labels(endpoint, model, str(version)).observe(compute_s)

    def _finish(
        self, endpoint: str, model: str, version: int, group: str, status: str, total_s: float
    ) -> None:
        self.requests.labels(endpoint, model, str(version), group, status).inc()
        self.total.labels(endpoint, model, str(version)).observe(total_s)

    def render(self) -> bytes:
        return self._triton.render().encode() + generate_latest(self.registry)

    def listen(self, host: str, port: int, replica: str) -> None:
        """This process's `/metrics` on a port of its own, from a daemon thread: for replicas
        behind a proxy that sends each request to any of them (Ray Serve)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.render() if self.path == "/metrics" else b"GET /metrics\n"
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("x-feedrank-replica", replica)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes are not worth a log line
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()

    def listen_on_any(self, host: str, ports: Iterable[int], replica: str) -> int | None:
        """`listen` on the first of `ports` no other process holds; that port, or None."""
        for port in ports:
            try:
                self.listen(host, port, replica)
                return port
            except OSError:  # another worker's or replica's
                continue
        return None
