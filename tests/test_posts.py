"""`POST /posts` and `GET /posts/{id}`: a posted post is a candidate of the next feed, survives a
restart, and gets the features and scores it would have had in the build's catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.features.text_pipelines import VERSION_FOLDER, load_pipeline
from feedrank.server.catalogue import PostCatalog
from feedrank.server.errors import FieldErrors
from feedrank.server.posts import MAX_ID_GAP, parse_posts
from feedrank.server.repository import LoadedVersion, ModelRepository
from feedrank.world.layout import WorldLayout

from feed_serving import ServerProcess, built_repository, first_user, last_moment, later, like


def _catalogue_posts(world: Path) -> pl.DataFrame:
    return pl.read_parquet(WorldLayout(world).posts).select("post_id", "text", "topic")


def _problems(body: object, catalog: PostCatalog, max_chars: int = 100) -> dict[str, str]:
    with pytest.raises(FieldErrors) as refused:
        parse_posts(json.dumps(body).encode(), catalog, max_chars)
    return {p["field"]: p["problem"] for p in refused.value.problems}


def test_a_batch_is_refused_whole_with_every_bad_field_named(tiny_world):
    catalog = PostCatalog(tiny_world)
    existing, topic = int(catalog.post_ids[0]), catalog.topics[0]
    new = int(catalog.post_ids.max()) + 1
    problems = _problems(
        {
            "posts": [
                {"post_id": new, "text": "fine", "topic": topic},
                {"post_id": existing, "text": "fine", "topic": topic},
                {"post_id": new, "text": "again", "topic": topic},
                {"post_id": new + 1, "text": "  ", "topic": topic},
                {"post_id": new + 2, "text": "x" * 101, "topic": topic},
                {"post_id": new + 3, "text": "fine", "topic": "astrology"},
                {"post_id": "7", "text": "fine", "topic": topic, "likes": 3},
                {"post_id": new + MAX_ID_GAP + 10, "text": "fine", "topic": topic},
                "a post",
            ]
        },
        catalog,
    )
    assert problems == {
        "posts[1].post_id": f"post {existing} exists",
        "posts[2].post_id": f"post {new} is twice in this batch",
        "posts[3].text": "required: a non-empty string",
        "posts[4].text": "101 characters; at most 100",
        "posts[5].topic": f"one of the catalogue's topics ({', '.join(catalog.topics)})",
        "posts[6].likes": "unknown field (allowed: post_id, text, topic)",
        "posts[6].post_id": "a non-negative integer, got '7'",
        "posts[7].post_id": f"at most {new - 1 + MAX_ID_GAP} (the catalogue's largest id + "
        f"{MAX_ID_GAP:,})",
        "posts[8]": "an object with post_id, text, topic",
    }
    assert set(_problems([], catalog)) == {"posts"}
    assert set(_problems({"post": []}, catalog)) == {"posts"}
    good = parse_posts(
        json.dumps([{"post_id": new, "text": "fine", "topic": topic}]).encode(), catalog, 100
    )
    assert good.rows() == [(new, "fine", topic)]


def test_a_posted_post_is_the_next_feeds_candidate_and_survives_a_restart(tiny_world, tmp_path):
    repository, log = built_repository(tiny_world), tmp_path / "log"
    posts = _catalogue_posts(tiny_world)
    user, moment = first_user(tiny_world), last_moment(tiny_world)
    new = int(posts["post_id"].max()) + 5
    post = {"post_id": new, "text": posts["text"][0], "topic": posts["topic"][0]}
    with (
        ServerProcess(tiny_world, repository, log) as server,
        httpx.Client(base_url=server.url, timeout=60.0) as client,
    ):
        # the user has liked every post of the catalogue: only a new post can fill the feed
        likes = [like(user, int(p), moment) for p in posts["post_id"]]
        assert client.post("/feed/events", json=likes).status_code == 200
        params = {"id": user, "time": later(moment, 60), "limit": 10}
        before = client.get("/post/recommendations/", params=params).json()
        assert before["recommendations"] == [] and before["candidates"] == posts.height

        answer = client.post("/posts", json={"posts": [post]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["post_ids"] == [new] and answer.json()["refused_by"] == []
        both = [{"model": "control", "version": 1}, {"model": "test", "version": 1}]
        assert answer.json()["versions"] == both

        after = client.get("/post/recommendations/", params=params).json()
        shown = {"id": new, "text": post["text"], "topic": post["topic"]}
        assert after["recommendations"] == [shown]
        assert after["candidates"] == posts.height + 1
        again = client.post("/posts", json=[post])
        assert again.status_code == 422
        assert again.json()["fields"] == [
            {"field": "posts[0].post_id", "problem": f"post {new} exists"}
        ]
        assert client.get(f"/posts/{new}").json()["versions"] == both
    logged = [json.loads(line) for f in sorted(log.glob("posts-*.jsonl")) for line in f.open()]
    assert [{k: r[k] for k in post} for r in logged] == [post]
    exposures = [json.loads(line) for f in log.glob("exposures-*.jsonl") for line in f.open()]
    assert sorted(r["candidates"] for r in exposures) == [posts.height, posts.height + 1]

    with (
        ServerProcess(tiny_world, repository, log) as server,
        httpx.Client(base_url=server.url, timeout=60.0) as client,
    ):
        stored = client.get(f"/posts/{new}").json()
        assert {k: stored[k] for k in ("id", "text", "topic", "versions")} == {
            **shown,
            "versions": both,
        }
        assert stored["posted_at"] == logged[0]["server_time"]
        after = client.get("/post/recommendations/", params=params).json()
        assert after["recommendations"] == [shown]
        assert client.get("/posts/999999999").status_code == 404
        assert client.get("/posts/seven").json()["fields"][0]["field"] == "post_id"


def _version(world: Path, model: str) -> tuple[LoadedVersion, OnlineFeatures, ModelInputs]:
    """The model's published version, loaded with the fast path, and its inputs."""
    repository = ModelRepository(built_repository(world), fast_path=True)
    repository.load_all()
    loaded = repository.get(model)
    online = OnlineFeatures.load(world)
    return loaded, online, ModelInputs.from_version_dir(online, loaded.path)


@pytest.mark.parametrize("model", ["control", "test"])
def test_a_post_added_online_gets_the_features_and_scores_of_the_build(tiny_world, model):
    """A catalogue post left out of a version's candidates and then added through its text
    pipeline gets the build's row and the build's score, in every request."""
    loaded, online, built = _version(tiny_world, model)
    posts = _catalogue_posts(tiny_world)
    rng = np.random.default_rng(3)
    chosen = rng.choice(posts["post_id"].to_numpy(), 5, replace=False)
    without = ModelInputs(
        online, built.specs, built.posts.filter(~pl.col("post_id").is_in(chosen)), built.exposure
    )
    pipeline = load_pipeline(loaded.path / VERSION_FOLDER)
    online_added = without.with_posts(
        pipeline.post_table(posts.filter(pl.col("post_id").is_in(chosen)))
    )
    assert sorted(online_added.post_ids.tolist()) == sorted(built.post_ids.tolist())
    row = {int(p): i for i, p in enumerate(online_added.post_ids)}
    order = np.array([row[int(p)] for p in built.post_ids])  # online_added's rows, built's order
    users = rng.choice(online.user_ids, 4, replace=False)
    start, end = online.history.epoch, online.cutoff
    for user in users:
        at = start + (end - start) * rng.uniform(0.2, 1.0)
        expected, got = built.matrix(int(user), at), online_added.matrix(int(user), at)[order]
        assert np.abs(got - expected).max() <= 1e-4
        requests = [built.request(int(user), at), online_added.request(int(user), at)]
        for request in requests:
            loaded.backend.prepare(request.snapshot)  # the fast path's tables for each catalogue
        first, second = loaded.backend.rank(requests)
        np.testing.assert_allclose(second[order], first, atol=1e-6)
        assert np.array_equal(
            built.post_ids[np.argsort(-first, kind="stable")[:5]],
            online_added.post_ids[np.argsort(-second, kind="stable")[:5]],
        )


@pytest.mark.parametrize("model", ["control", "test"])
def test_grown_inputs_are_the_inputs_of_the_grown_catalogue(tiny_world, model):
    """Inputs grown by new posts extend their cached snapshots by the new rows only: the same
    matrices, bit for bit, as inputs built on the grown catalogue at once; and the fast path
    ranks them with the earlier catalogue's tables and the plain model for the new rows."""
    loaded, online, inputs = _version(tiny_world, model)
    posts = _catalogue_posts(tiny_world)
    user, at = int(online.user_ids[3]), online.cutoff - np.timedelta64(90, "m")
    earlier = inputs.request(user, at)  # cached: the grown inputs extend it
    loaded.backend.prepare(earlier.snapshot)
    new = posts.head(3).with_columns(pl.col("post_id") + int(posts["post_id"].max()) + 1)
    grown = inputs.with_posts(load_pipeline(loaded.path / VERSION_FOLDER).post_table(new))
    at_once = ModelInputs(online, inputs.specs, grown.posts, inputs.exposure)
    for moment in (at, online.cutoff, at - np.timedelta64(3, "D")):
        assert np.array_equal(grown.matrix(user, moment), at_once.matrix(user, moment))

    request = grown.request(user, at)
    assert request.snapshot.family == earlier.snapshot.family
    assert request.snapshot.key != earlier.snapshot.key
    fast_before = loaded.backend.ranking_paths()["fast"]
    (scores,) = loaded.backend.rank([request])
    assert loaded.backend.ranking_paths()["fast"] == fast_before + 1
    plain = loaded.backend.like_probability(request.matrix())
    np.testing.assert_allclose(scores, plain, atol=1e-6)
    assert scores.size == posts.height + 3
