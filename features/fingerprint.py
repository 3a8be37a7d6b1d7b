"""When to rebuild: a digest of the world's input tables and of the feature code itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from feedrank.world.layout import WorldLayout


def input_files(world: WorldLayout) -> list[Path]:
    return [world.users, world.posts, *sorted(world.feed_dir.glob("*.parquet"))]


def code_version() -> str:
    """Digest of this package's sources: changing a feature definition invalidates old tables."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(world: WorldLayout, parameters: dict) -> str:
    """Names, sizes and modification times of the inputs (cheap: no file is read) + code."""
    stats = [
        (str(p.relative_to(world.root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in input_files(world)
    ]
    payload = json.dumps(
        {"inputs": stats, "code": code_version(), "parameters": parameters}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
