"""The feed endpoint end to end: a real `feedrank serve` (uvicorn on 127.0.0.1) over a built
tiny world, called over HTTP with httpx; facts checked against the world's own Parquet tables."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest
from catboost import CatBoostClassifier

from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.server.exposure_log import query as log_query
from feedrank.server.router import bucket
from feedrank.world.layout import WorldLayout

from feed_serving import ServerProcess, built_repository

NEW_USER = 10**12


@pytest.fixture(scope="module")
def repository(tiny_world: Path) -> Path:
    return built_repository(tiny_world)


@pytest.fixture(scope="module")
def server(tiny_world: Path, repository: Path, tmp_path_factory) -> ServerProcess:
    process = ServerProcess(tiny_world, repository, tmp_path_factory.mktemp("feed") / "log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="module")
def moment(tiny_world: Path) -> str:
    """A request time three quarters into the world's history."""
    ((first, last),) = duckdb.sql(
        f"SELECT min(timestamp), max(timestamp) FROM read_parquet("
        f"'{WorldLayout(tiny_world).feed_glob}')"
    ).fetchall()
    return (first + (last - first) * 3 / 4).replace(microsecond=0).isoformat(sep=" ")


def likes_before(world: Path, at: str) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(
        f"SELECT user_id, post_id FROM read_parquet('{WorldLayout(world).feed_glob}')"
        f" WHERE action = 'like' AND timestamp < TIMESTAMP '{at}'"
    )


@pytest.fixture(scope="module")
def liker(tiny_world: Path, moment: str) -> tuple[int, set[int]]:
    """The user with the most likes before `moment`, and those posts."""
    ((user_id,),) = (
        likes_before(tiny_world, moment)
        .aggregate("user_id, count(DISTINCT post_id) AS n")
        .order("n DESC, user_id")
        .limit(1)
        .select("user_id")
        .fetchall()
    )
    posts = (
        likes_before(tiny_world, moment).filter(f"user_id = {user_id}").select("post_id").fetchall()
    )
    return user_id, {p for (p,) in posts}


def recommend(client: httpx.Client, **params: object) -> dict:
    response = client.get("/post/recommendations/", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_contract(client, tiny_world, repository, moment, liker):
    body = recommend(client, id=liker[0], time=moment)
    assert body["exp_group"] in {"control", "test"}
    assert len(body["recommendations"]) == 5  # the default limit
    posts = dict(
        (
            (p, (t, c))
            for p, t, c in duckdb.sql(
                f"SELECT post_id, text, topic FROM read_parquet('{WorldLayout(tiny_world).posts}')"
            ).fetchall()
        )
    )
    for item in body["recommendations"]:
        assert set(item) == {"id", "text", "topic"}
        assert (item["text"], item["topic"]) == posts[item["id"]]
    assert len({item["id"] for item in body["recommendations"]}) == 5
    assert body["model"] == body["exp_group"]  # the default router: group name = model name
    assert body["version"] == 1 and body["fallback"] is False and len(body["request_id"]) == 32


def test_exp_group_follows_the_md5_formula(client, moment):
    for user_id in (200, 201, 202, 203, 204, 205):
        expected = "control" if bucket(user_id, "feedrank") <= 49 else "test"
        assert recommend(client, id=user_id, time=moment)["exp_group"] == expected


def test_posts_liked_before_time_are_excluded_and_only_those(client, tiny_world, moment, liker):
    user_id, liked = liker
    assert liked, "the tiny world should have a user with likes"
    n_posts = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{WorldLayout(tiny_world).posts}')"
    ).fetchall()[0][0]
    body = recommend(client, id=user_id, time=moment, limit=100)
    ids = [p["id"] for p in body["recommendations"]]
    assert not set(ids) & liked
    assert len(ids) == min(100, n_posts - len(liked))
    # a moment before the world began: nothing is liked yet, so liked posts may come back
    early = recommend(client, id=user_id, time="2000-01-01T00:00", limit=100)["recommendations"]
    assert len(early) == min(100, n_posts)


def test_recommendations_are_the_top_of_catboosts_own_scores(
    client, tiny_world, repository, moment, liker
):
    user_id, liked = liker
    body = recommend(client, id=user_id, time=moment, limit=20)
    version_dir = repository / body["model"] / str(body["version"])
    inputs = ModelInputs.from_version_dir(OnlineFeatures.load(tiny_world), version_dir)
    rows = inputs.matrix(user_id, np.datetime64(moment.replace(" ", "T"), "us"))
    model = CatBoostClassifier()
    model.load_model(str(version_dir / "model.cbm"))
    native = dict(zip(inputs.post_ids.tolist(), model.predict_proba(rows)[:, 1], strict=True))
    served = [p["id"] for p in body["recommendations"]]
    served_scores = np.array([native[p] for p in served])
    others = [s for p, s in native.items() if p not in served and p not in liked]
    # the export's parity gate holds ONNX within 1e-5 of CatBoost: order may differ only there
    assert np.all(np.diff(served_scores) <= 1e-5)
    assert served_scores.min() >= max(others) - 1e-5
    assert len(set(np.round(served_scores, 4))) > 1  # a real ranking, not a field of ties


def test_new_user_gets_the_flagged_popular_fallback(client, tiny_world, server, moment):
    body = recommend(client, id=NEW_USER, time=moment, limit=10)
    assert body["fallback"] is True and body["model"] == "popular"
    assert body["exp_group"] in {"control", "test"}
    ids = [p["id"] for p in body["recommendations"]]
    # the world's posts by likes before the start of the request's day, ties by post id
    layout = WorldLayout(tiny_world)
    popular = duckdb.sql(
        f"SELECT p.post_id FROM read_parquet('{layout.posts}') p LEFT JOIN ("
        f"  SELECT post_id, count(*) AS n FROM read_parquet('{layout.feed_glob}')"
        f"  WHERE action = 'like' AND timestamp < DATE '{moment[:10]}' GROUP BY 1) l"
        " USING (post_id) ORDER BY coalesce(n, 0) DESC, p.post_id LIMIT 10"
    ).fetchnumpy()["post_id"]
    assert ids == popular.tolist()
    logged = duckdb.sql(
        f"SELECT fallback, post_ids FROM ({log_query(server.log_dir)}) "
        f"WHERE request_id = '{body['request_id']}'"
    ).fetchall()
    assert logged == [(True, ids)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"id": "abc"}, "id"),
        ({"id": "12.5"}, "id"),
        ({}, "id"),
        ({"id": 200, "time": "not-a-time"}, "time"),
        ({"id": 200, "time": "2021-12-32 10:00"}, "time"),
        ({"id": 200, "limit": 0}, "limit"),
        ({"id": 200, "limit": 101}, "limit"),
        ({"id": 200, "limit": "ten"}, "limit"),
        ({"id": 200, "user_id": 5}, "user_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, params, field):
    response = client.get("/post/recommendations/", params=params)
    assert response.status_code == 422
    body = response.json()
    assert field in [problem["field"] for problem in body["fields"]], body
    assert all(problem["problem"] for problem in body["fields"])


def test_same_request_same_answer_and_offsets_are_utc(client, moment, liker):
    first = recommend(client, id=liker[0], time=moment, limit=30)
    second = recommend(client, id=liker[0], time=moment.replace(" ", "T"), limit=30)
    hour = int(moment[11:13])
    shifted = f"{moment[:11]}{hour:02d}{moment[13:]}+00:00"
    third = recommend(client, id=liker[0], time=shifted, limit=30)
    for other in (second, third):
        assert {k: v for k, v in other.items() if k != "request_id"} == {
            k: v for k, v in first.items() if k != "request_id"
        }
    assert first["request_id"] != second["request_id"]


def test_every_answer_is_in_the_exposure_log(client, server, moment, liker):
    bodies = [
        recommend(client, id=user_id, time=moment, limit=3)
        for user_id in (liker[0], 201, 202, NEW_USER)
    ]
    logged = {
        row[0]: row[1:]
        for row in duckdb.sql(
            f"SELECT request_id, user_id, exp_group, model, version, post_ids, fallback, "
            f"requested_time FROM ({log_query(server.log_dir)})"
        ).fetchall()
    }
    for body, user_id in zip(bodies, (liker[0], 201, 202, NEW_USER), strict=True):
        record = logged[body["request_id"]]
        assert record[:6] == (
            user_id,
            body["exp_group"],
            body["model"],
            body["version"],
            [p["id"] for p in body["recommendations"]],
            body["fallback"],
        )
        assert record[6].isoformat(sep=" ") == moment


def test_router_state_is_exposed(client, repository):
    state = client.get("/router").json()
    assert state["salt"] == "feedrank" and state["last_error"] is None
    assert [(g["name"], g["buckets"], g["model"]) for g in state["groups"]] == [
        ("control", [0, 49], "control"),
        ("test", [50, 99], "test"),
    ]
    assert json.loads(json.dumps(state))["path"] == str(repository / "router.toml")
