"""The configured split an SRM check compares against: `--split` text or the router file."""

from __future__ import annotations

from pathlib import Path

from feedrank.errors import FeedrankError
from feedrank.server.router import BUCKETS, RouterConfigError, parse_router


def parse_split(text: str) -> dict[str, float]:
    """`control=50,test=50` -> {"control": 0.5, "test": 0.5} (weights need not sum to 100)."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0 or name.strip() in shares:
            raise FeedrankError(
                f"--split: expected name=weight pairs like control=50,test=50 "
                f"(positive, distinct names), got {text!r}"
            )
        shares[name.strip()] = value
    total = sum(shares.values())
    return {name: value / total for name, value in shares.items()}


def router_shares(router_file: Path) -> dict[str, float]:
    """Each group's share of the md5 buckets in a router file (models are not checked here)."""
    if not router_file.is_file():
        raise FeedrankError(f"{router_file}: router config not found")
    try:
        config = parse_router(
            router_file.read_text(), lambda model, version: None, source=str(router_file)
        )
    except RouterConfigError as error:
        raise FeedrankError(str(error)) from None
    return {g.name: (g.last - g.first + 1) / BUCKETS for g in config.groups}
