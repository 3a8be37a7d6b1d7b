"""One typed settings object, read from `feedrank.toml` and `FEEDRANK_*` environment variables.

Precedence (highest first): command-line flags, environment (`FEEDRANK_SERVER__PORT=9000`),
the TOML file (`$FEEDRANK_CONFIG`, else `./feedrank.toml` if present), the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from feedrank.errors import FeedrankError


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # onnxruntime intra-op threads per session: the default (every core) oversubscribes the
    # machine once several model versions are loaded side by side
    intra_op_threads: int = Field(1, ge=1)
    # Triton-style dynamic batching of concurrent feed requests (off: one backend call each)
    dynamic_batching: bool = True
    max_batch_requests: int = Field(8, ge=1)
    max_queue_delay_us: int = Field(500, ge=0)
    # worker threads that gather each request's inputs and call the backends, off the event loop
    scoring_threads: int = Field(2, ge=1)
    # rank feeds with the ranker each model's config.pbtxt declares (its `ranker` parameter,
    # "fastpath" for published models: docs/fastpath.md); off: with the config's backend. The
    # version's /infer is that backend's (the fastpath backend's is the plain model.onnx)
    fast_path: bool = True
    # the first request of an hour waits while that hour's fast-path ranker builds (0.1-0.4 s on
    # the default world) instead of being answered from the plain model, whose scores differ in
    # the last bits and can swap two nearly tied posts: every feed then is the one the offline
    # replay ranks (`feedrank ab simulate` turns it on; a live feed keeps answering at once)
    fast_path_wait: bool = False
    # KServe v2 repository extension (load/unload/index): off unless a token is set
    admin_token: str | None = None
    # POST /feed/events needs `Authorization: Bearer <events_token>` when set
    events_token: str | None = None
    # POST /posts needs `Authorization: Bearer <posts_token>` when set; a post's text is at
    # most max_post_chars characters
    posts_token: str | None = None
    max_post_chars: int = Field(50_000, ge=1)
    # likes posted since the feature snapshot held for exclusion, 24 bytes each (240 MB here);
    # a batch that would pass it is refused with 503
    max_live_likes: int = Field(10_000_000, ge=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # connection limits (server/http_guard.py): a client must send a request's headers within
    # header_timeout_s; idle keep-alive connections close after keep_alive_s; more than
    # max_connections open, or max_inflight requests in progress, answer 503 + Retry-After at once
    max_connections: int = Field(1000, ge=1)
    max_inflight: int = Field(256, ge=1)
    header_timeout_s: float = Field(10.0, gt=0)
    keep_alive_s: float = Field(5.0, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_headers: int = Field(100, ge=8)
    # server log lines: "text" (ISO timestamps) or "json"; access_log: one line per request
    log_format: Literal["text", "json"] = "text"
    access_log: bool = False
    # where the processes serving the feed share posted likes: None, the log folder (the
    # processes of one machine); "postgresql://user@host:port/db", replicas on any machines
    state_url: str | None = None
    # seconds between re-reads of the router file and rescans of the repository (0 = never)
    poll_interval_s: float = Field(1.0, ge=0)
    repository_poll: bool = False


class ExposureLogSettings(BaseModel):
    rotate_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    rotate_seconds: float = Field(3600.0, gt=0)
    # fsync every record before the answer leaves: survives kill -9 and power loss of the process
    fsync: bool = True


class BuildSettings(BaseModel):
    # a ceiling: early stopping keeps fewer (126 and 182 on the default world, docs/models.md)
    iterations: int = Field(800, ge=1)
    # stop once validation AUC has not improved for this many trees (None: grow all)
    early_stopping: int | None = Field(50, ge=1)
    depth: int = Field(6, ge=1, le=16)
    # half CatBoost's automatic rate for the default world (0.31 at 300 trees): twice the trees,
    # each fitting less noise, rank the catalogue better on average over seeds and with less
    # spread between them (docs/models.md);
    # "auto": CatBoost's automatic rate for the data and the tree count
    learning_rate: Annotated[float, Field(gt=0)] | Literal["auto"] = 0.15
    # leaf values shrunk hard toward 0: the trees' noise, not their bias, separates the models
    # from what the features allow (docs/models.md)
    l2_leaf_reg: float = Field(100.0, gt=0)
    seed: int = 42
    threads: int = Field(2, ge=1)
    # the sentence encoder's arithmetic: float32 gives sentence-transformers' vectors; int8
    # (per channel and per token) encodes 1.2-1.5x faster, its vectors within cosine 0.99
    encoder_precision: Literal["float32", "int8"] = "float32"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FEEDRANK_", env_nested_delimiter="__", extra="forbid"
    )

    world: Path = Path("data/world")
    repository: Path = Path("model_repository")
    log_dir: Path = Path("data/exposure_log")
    server: ServerSettings = ServerSettings()
    exposure_log: ExposureLogSettings = ExposureLogSettings()
    build: BuildSettings = BuildSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return init_settings, env_settings, toml


def config_file() -> Path | None:
    explicit = os.environ.get("FEEDRANK_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("feedrank.toml")
    return local if local.exists() else None


def load_settings(**overrides: Any) -> Settings:
    """Settings from file and environment, with command-line values (not None) on top; invalid
    ones raise FeedrankError naming each key, its value and what is allowed."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        raise FeedrankError(describe(error, config_file())) from None


def describe(error: ValidationError, source: Path | None = None) -> str:
    """One line per invalid setting: `server.port = 70000: ...`, without pydantic's URLs."""
    where = f" (from {source} and FEEDRANK_* variables)" if source else " (FEEDRANK_* variables)"
    lines = [f"invalid settings{where}:"]
    for problem in error.errors(include_url=False):
        key = ".".join(str(part) for part in problem["loc"])
        value = problem.get("input")
        lines.append(f"  {key} = {value!r}: {problem['msg']}")
    return "\n".join(lines)


def default(key: str) -> str:
    """A setting's built-in default for help texts: `default("server.port")` -> "8000"."""
    model: type[BaseModel] = Settings
    *parents, name = key.split(".")
    for parent in parents:
        model = type(model.model_fields[parent].default)
    return f"{model.model_fields[name].default}, settings.{key}"
