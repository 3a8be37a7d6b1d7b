"""A real uvicorn server on 127.0.0.1 with the KServe v2 routes over a small real repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette

from feedrank.server.kserve import kserve_routes
from feedrank.server.metrics import Metrics
from feedrank.server.repository import ModelRepository
from feedrank.settings import Settings

from model_repo_factory import UvicornThread, make_repository

TOKEN = "s3cret-token"


@dataclass
class KServeServer:
    root: Path
    repository: ModelRepository
    metrics: Metrics
    server: UvicornThread

    @property
    def url(self) -> str:  # host:port, as tritonclient wants it
        return self.server.url

    @property
    def http(self) -> str:
        return f"http://{self.server.url}"


def start(
    root: Path,
    models: dict[str, list[int]],
    *,
    token: str | None = TOKEN,
    max_body_bytes: int = 1 << 20,
    **config: object,
) -> KServeServer:
    make_repository(root, models, **config)
    repository = ModelRepository(root)
    repository.load_all()
    settings = Settings(server={"admin_token": token, "max_body_bytes": max_body_bytes})
    metrics = Metrics(repository)
    app = Starlette(routes=kserve_routes(repository, settings, metrics))
    return KServeServer(root, repository, metrics, UvicornThread(app))
