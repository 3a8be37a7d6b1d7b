"""The group router on its own: hashing, the split, validation and reload of router.toml."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest

from feedrank.server.router import Router, RouterConfigError, bucket, parse_router

KNOWN = {("control", 1), ("test", 1), ("test", 2)}


def servable(model: str, version: int) -> str | None:
    return None if (model, version) in KNOWN else "not loaded"


def router_toml(*groups: tuple[str, int, int, str, int], salt: str = "feedrank") -> str:
    text = f'salt = "{salt}"\n'
    for name, first, last, model, version in groups:
        text += (
            f'[[groups]]\nname = "{name}"\nbuckets = [{first}, {last}]\n'
            f'model = "{model}"\nversion = {version}\n'
        )
    return text


DEFAULT = router_toml(("control", 0, 49, "control", 1), ("test", 50, 99, "test", 1))


def test_bucket_is_the_documented_md5_formula():
    for user_id in (0, 200, 168_552, 10**12):
        expected = int(hashlib.md5(f"{user_id}feedrank".encode()).hexdigest(), 16) % 100
        assert bucket(user_id, "feedrank") == expected


@pytest.mark.parametrize("test_share", [50, 20])
def test_split_over_100k_ids_is_within_one_point_of_the_config(test_share):
    config = parse_router(
        router_toml(
            ("control", 0, 99 - test_share, "control", 1), ("test", 100 - test_share, 99, "test", 1)
        ),
        servable,
    )
    groups = Counter(config.assign(user_id).name for user_id in range(100_000))
    assert abs(groups["test"] / 100_000 * 100 - test_share) < 1.0
    assert groups["control"] + groups["test"] == 100_000


def test_salt_changes_the_assignment():
    a = parse_router(DEFAULT, servable)
    b = parse_router(DEFAULT.replace('"feedrank"', '"other"'), servable)
    same = sum(a.assign(u).name == b.assign(u).name for u in range(2_000))
    assert 800 < same < 1_200  # independent halves agree about half the time


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('salt = "x"\n[[groups]\n', "not valid TOML"),
        (
            router_toml(("control", 0, 59, "control", 1), ("test", 50, 99, "test", 1)),
            "bucket 50 is in both 'control' and 'test'",
        ),
        (
            router_toml(("control", 0, 40, "control", 1), ("test", 50, 99, "test", 1)),
            "buckets 41-49 belong to no group",
        ),
        (
            router_toml(("control", 0, 49, "control", 1), ("test", 50, 99, "test", 7)),
            "model 'test' version 7 cannot serve: not loaded",
        ),
        (
            router_toml(("control", 0, 49, "nope", 1), ("test", 50, 99, "test", 1)),
            "model 'nope' version 1 cannot serve",
        ),
        (
            router_toml(("control", 0, 49, "control", 1), ("test", 50, 100, "test", 1)),
            "'buckets' must be [first, last]",
        ),
        (router_toml(("a", 0, 49, "control", 1), ("a", 50, 99, "test", 1)), "group names repeat"),
        (router_toml(("control", 0, 99, "control", 1), salt=""), "'salt' must be a non-empty"),
        ('salt = "s"\n', "needs at least one [[groups]]"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(text, message):
    with pytest.raises(RouterConfigError) as error:
        parse_router(text, servable)
    assert message in str(error.value)


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    # mtime resolution on some filesystems is coarse: make every write visible to the poll
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_reload_adopts_a_valid_change_and_keeps_the_old_config_on_a_bad_one(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(DEFAULT)
    router = Router(path, servable)
    assert router.reload_if_changed() is False  # unchanged file: nothing to do

    _rewrite(path, router_toml(("control", 0, 79, "control", 1), ("test", 80, 99, "test", 2)))
    assert router.reload_if_changed() is True
    assert router.config.groups[1].version == 2 and router.state()["last_error"] is None

    in_force = router.config
    _rewrite(path, router_toml(("control", 0, 79, "control", 1), ("test", 70, 99, "test", 2)))
    assert router.reload_if_changed() is False
    assert router.config is in_force
    assert "bucket 70 is in both" in router.state()["last_error"]


def test_a_refused_config_is_retried_until_what_it_names_can_serve(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(DEFAULT)
    router = Router(path, servable)
    _rewrite(path, router_toml(("control", 0, 49, "control", 1), ("test", 50, 99, "test", 3)))
    assert router.reload_if_changed() is False
    KNOWN.add(("test", 3))  # the version finished loading after the router was edited
    try:
        assert router.reload_if_changed() is True
        assert router.config.groups[1].version == 3
    finally:
        KNOWN.discard(("test", 3))
