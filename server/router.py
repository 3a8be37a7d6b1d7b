"""The experiment-group router: md5 bucket of the user id -> group -> (model, version).

The config is `R/router.toml`, edited by people (format in ARCHITECTURE.md). `Router` re-reads it
when its modification time changes; an invalid file is refused with a logged reason and the
config in force stays, so a typo never takes the feed down.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BUCKETS = 100
log = logging.getLogger("feedrank.router")


class RouterConfigError(ValueError):
    """The router file is unusable; the message says where and why."""


@dataclass(frozen=True)
class Group:
    name: str
    first: int  # inclusive bucket range
    last: int
    model: str
    version: int


@dataclass(frozen=True)
class RouterConfig:
    salt: str
    groups: tuple[Group, ...]
    # bucket -> group, precomputed so that assigning a user is a hash and an index
    table: tuple[Group, ...]

    def bucket(self, user_id: int) -> int:
        return bucket(user_id, self.salt)

    def assign(self, user_id: int) -> Group:
        return self.table[self.bucket(user_id)]

    def describe(self) -> dict:
        return {
            "salt": self.salt,
            "groups": [
                {
                    "name": g.name,
                    "buckets": [g.first, g.last],
                    "share": (g.last - g.first + 1) / BUCKETS,
                    "model": g.model,
                    "version": g.version,
                }
                for g in self.groups
            ],
        }


def bucket(user_id: int, salt: str) -> int:
    return int(hashlib.md5(f"{user_id}{salt}".encode()).hexdigest(), 16) % BUCKETS


# (model, version) -> None if servable, else the reason it is not
Servable = Callable[[str, int], str | None]


def parse_router(text: str, servable: Servable, *, source: str = "router.toml") -> RouterConfig:
    """Parse and validate a router file; raise RouterConfigError naming the problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RouterConfigError(f"{source}: not valid TOML: {error}") from None
    salt = raw.get("salt")
    if not isinstance(salt, str) or not salt:
        raise RouterConfigError(f"{source}: 'salt' must be a non-empty string")
    entries = raw.get("groups")
    if not isinstance(entries, list) or not entries:
        raise RouterConfigError(f"{source}: needs at least one [[groups]] table")
    unknown = set(raw) - {"salt", "groups"}
    if unknown:
        raise RouterConfigError(f"{source}: unknown keys {sorted(unknown)}")
    groups = tuple(_group(entry, i, source, servable) for i, entry in enumerate(entries))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise RouterConfigError(f"{source}: group names repeat: {names}")
    return RouterConfig(salt, groups, _table(groups, source))


def _group(entry: object, index: int, source: str, servable: Servable) -> Group:
    where = f"{source}: groups[{index}]"
    if not isinstance(entry, dict):
        raise RouterConfigError(f"{where}: must be a table")
    missing = {"name", "buckets", "model", "version"} - set(entry)
    extra = set(entry) - {"name", "buckets", "model", "version"}
    if missing or extra:
        raise RouterConfigError(
            f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}"
        )
    name, buckets, model, version = (entry[k] for k in ("name", "buckets", "model", "version"))
    if not isinstance(name, str) or not name:
        raise RouterConfigError(f"{where}: 'name' must be a non-empty string")
    where = f"{source}: group '{name}'"
    if not (
        isinstance(buckets, list)
        and len(buckets) == 2
        and all(type(b) is int for b in buckets)
        and 0 <= buckets[0] <= buckets[1] < BUCKETS
    ):
        raise RouterConfigError(
            f"{where}: 'buckets' must be [first, last] with "
            f"0 <= first <= last <= {BUCKETS - 1}, got {buckets!r}"
        )
    if not isinstance(model, str) or type(version) is not int:
        raise RouterConfigError(f"{where}: 'model' must be a string and 'version' an integer")
    reason = servable(model, version)
    if reason is not None:
        raise RouterConfigError(
            f"{where}: model '{model}' version {version} cannot serve: {reason}"
        )
    return Group(name, buckets[0], buckets[1], model, version)


def _table(groups: tuple[Group, ...], source: str) -> tuple[Group, ...]:
    owner: list[Group | None] = [None] * BUCKETS
    for group in groups:
        for b in range(group.first, group.last + 1):
            taken = owner[b]
            if taken is not None:
                raise RouterConfigError(
                    f"{source}: bucket {b} is in both '{taken.name}' and '{group.name}'"
                )
            owner[b] = group
    gaps = [b for b, g in enumerate(owner) if g is None]
    if gaps:
        raise RouterConfigError(f"{source}: buckets {_ranges(gaps)} belong to no group")
    return tuple(owner)  # type: ignore[arg-type]


def _ranges(values: list[int]) -> str:
    spans: list[list[int]] = []
    for v in values:
        if spans and spans[-1][1] == v - 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


class Router:
    """The config in force, swapped atomically (one attribute assignment) on a valid change."""

    def __init__(self, path: Path, servable: Servable) -> None:
        self.path, self._servable = path, servable
        self.config = parse_router(path.read_text(), servable, source=str(path))
        self._mtime = path.stat().st_mtime_ns
        self.loaded_at = datetime.now(UTC)
        self.last_error: str | None = None

    def reload_if_changed(self) -> bool:
        """Adopt the file if it changed and is valid; return True when a new config took effect.

        A refused file is retried on every poll, because what it names may become servable
        later (a version still loading); the refusal is logged once per distinct reason.
        """
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self._mtime and self.last_error is None:
                return False
            self._mtime = mtime
            config = parse_router(self.path.read_text(), self._servable, source=str(self.path))
        except (OSError, RouterConfigError, UnicodeDecodeError) as error:
            if str(error) != self.last_error:
                log.error("router config refused, previous config stays in force: %s", error)
            self.last_error = str(error)
            return False
        self.config, self.loaded_at, self.last_error = config, datetime.now(UTC), None
        log.info("router config now in force: %s", config.describe())
        return True

    def state(self) -> dict:
        return {
            "path": str(self.path),
            "loaded_at": self.loaded_at.isoformat(),
            "last_error": self.last_error,
            **self.config.describe(),
        }
