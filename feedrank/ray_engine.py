"""`feedrank serve --engine ray`: the same Starlette app as a Ray Serve application.

One ingress deployment, `feedrank`, whose replicas each build the whole app (`serve.create`)
when Ray starts them: the state loads in the replica, not in the driver. Ray's HTTP proxy
listens on `server.host:server.port` and spreads requests over the replicas; every answer names
its replica (`x-feedrank-replica`), and each replica serves its own `/metrics` on one of
`server.port + 1 … server.port + N` of its node, N the deployment's replicas: that of its local
rank r, `server.port + 1 + r`, when free (through the proxy, a scrape reaches any one).
Replicas share what they must as any replicas do: the world and the repository from a path
every node sees, posted likes through the log folder (one machine) or PostgreSQL
(`server.state_url`), exposure logs in one folder or one per node. The driver (this command)
deploys, then waits; on SIGINT or SIGTERM it deletes the application, which stops each replica
through its lifespan, so the logs are drained.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from feedrank.errors import FeedrankError
from feedrank.settings import Settings, describe

log = logging.getLogger("feedrank.ray")
APP_NAME = "feedrank"


@dataclass(frozen=True)
class Scale:
    replicas: int
    min_replicas: int | None = None  # both set: autoscaling between them
    max_replicas: int | None = None

    def options(self) -> dict[str, Any]:
        if self.min_replicas is None or self.max_replicas is None:
            return {"num_replicas": self.replicas}
        return {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": 8,
            }
        }


def metrics_ports(settings: Settings, local_rank: int, replicas: int) -> list[int]:
    """The ports a replica tries for its own /metrics, its local rank's first: replicas started
    together can be given one local rank (seen with two), and each must still find a port of
    its own among `server.port + 1 …` one per replica."""
    count = max(replicas, local_rank + 1)
    first = settings.server.port + 1
    return [first + (local_rank + i) % count for i in range(count)]


def application(settings: Settings, scale: Scale) -> Any:
    """The Serve application: the ingress deployment bound, not yet running."""
    from ray import serve

    def build() -> Any:  # on each replica, when Ray starts it
        from feedrank.serve import create
        from feedrank.server.shared_likes import replica_name

        app = create(settings)
        # the proxy sends a scrape to any replica: each also answers on a port of its own
        context = serve.get_replica_context()
        ports = metrics_ports(settings, context.rank.local_rank, context.world_size)
        port = app.state.feed.metrics.listen_on_any(settings.server.host, ports, replica_name())
        if port is None:
            log.warning("replica metrics: every port of %s is taken", ports)
        return app

    deployment = serve.deployment(
        name=APP_NAME,
        # the app scores on its own threads and awaits them: many requests in flight per replica
        max_ongoing_requests=settings.server.max_inflight,
        # the state takes a while to load on a large world
        health_check_timeout_s=120,
        graceful_shutdown_timeout_s=30,
        **scale.options(),
    )(serve.ingress(build)())
    return deployment.bind()


def app(args: dict[str, Any]) -> Any:
    """The application builder a Serve config names (`import_path: feedrank.ray_engine:app`,
    deploy/ray/serve_config.yaml): `args` are settings (`world`, `repository`, `log_dir`,
    `server`: a table of server settings) and `replicas`; the config's `deployments` entry may
    override the replicas or set autoscaling, as Serve allows."""
    options = dict(args)
    replicas = int(options.pop("replicas", 2))
    try:
        settings = Settings.model_validate(options)
    except ValidationError as error:
        raise FeedrankError(f"Serve config args: {describe(error)}") from None
    return application(settings, Scale(replicas))


def run(settings: Settings, scale: Scale, address: str | None) -> None:
    """Deploy on the cluster at `address` (None: a local one started here), then wait."""
    import ray
    from ray import serve

    try:
        ray.init(address=address or "local", namespace=APP_NAME, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise FeedrankError(f"--ray-address {address}: {error}") from None
    serve.start(http_options={"host": settings.server.host, "port": settings.server.port})
    stop = threading.Event()
    try:
        serve.run(application(settings, scale), name=APP_NAME, route_prefix="/")
        # after Ray and Serve have installed theirs: a stop request ends the wait below
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        log.info(
            "feedrank deployed on Ray: %s on http://%s:%d",
            scale,
            settings.server.host,
            settings.server.port,
        )
        while not stop.wait(timeout=1.0):
            pass
        log.info("stopping: the replicas drain their logs")
    finally:
        serve.delete(APP_NAME)  # each replica's lifespan ends: logs drained and closed
        serve.shutdown()
        ray.shutdown()
