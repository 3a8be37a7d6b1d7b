"""Pages: routes added to the served app beside the feed's (the feed explorer; the live
experiment page of the A/B stage), with the OpenAPI path items of their JSON endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute


@dataclass(frozen=True)
class Pages:
    routes: Sequence[BaseRoute]
    openapi: Mapping[str, Any]  # OpenAPI 3.0 path items by path, merged into /openapi.json
