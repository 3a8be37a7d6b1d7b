"""The fast-path backend plugin against the plain onnxruntime backend: the same probabilities and
top-5 through either of its paths, for single and batched requests; the repository ranking with
the ranker config.pbtxt declares; and the same feed answers from a real `feedrank serve` with
and without the fast path."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest
from catboost import CatBoostClassifier
from prometheus_client.parser import text_string_to_metric_families

from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.model_config import (
    CONFIG_FILE,
    RANKER_PARAMETER,
    declared_ranker,
    format_config,
    read_config,
)
from feedrank.server.backends.base import Backend, ModelLoadError, load_backend
from feedrank.server.backends.fastpath import FastPathBackend
from feedrank.server.backends.onnxruntime import OnnxRuntimeBackend
from feedrank.server.exposure_log import query
from feedrank.server.ranking import rank
from feedrank.server.repository import ModelRepository
from feedrank.server.scoring import VersionScorer

from feed_serving import ServerProcess, built_repository, copy_repository

MODELS = ("control", "test")
NO_LIKES = np.zeros(0, np.int64)


@pytest.fixture(scope="module")
def fast_repository(tiny_world: Path, tmp_path_factory) -> Path:
    """A copy of the built repository whose models name the fastpath backend."""
    repository = copy_repository(built_repository(tiny_world), tmp_path_factory.mktemp("fast"))
    for model in MODELS:
        config = repository / model / CONFIG_FILE
        text = config.read_text()
        assert 'backend: "onnxruntime"' in text
        config.write_text(text.replace('backend: "onnxruntime"', 'backend: "fastpath"'))
    return repository


@pytest.fixture(scope="module")
def online(tiny_world: Path) -> OnlineFeatures:
    built_repository(tiny_world)  # builds the world's features first
    return OnlineFeatures.load(tiny_world)


def load(repository: Path, model: str) -> Backend:
    return load_backend(repository / model / "1", read_config(repository / model))


def requests(online: OnlineFeatures, hours: int, per_hour: int) -> list[tuple[int, np.datetime64]]:
    """Seeded (user, time) pairs in `hours` hours of the world's last day, grouped by hour (the
    posts' recent activity is as of the hour: a ranker serves one hour)."""
    rng = np.random.default_rng(11)
    last = (online.cutoff - np.timedelta64(1, "h")).astype("datetime64[h]")
    pairs = []
    for hour in range(hours - 1, -1, -1):
        start = (last - np.timedelta64(3 * hour, "h")).astype("datetime64[us]")
        for user in rng.choice(online.user_ids, per_hour, replace=False):
            at = start + np.timedelta64(int(rng.integers(0, 3_600_000_000)), "us")
            pairs.append((int(user), min(at, online.cutoff)))
    return pairs


@pytest.mark.parametrize("model", MODELS)
def test_probabilities_and_top5_equal_the_plain_backend_on_both_paths(
    tiny_world, fast_repository, online, model
):
    fast = load(fast_repository, model)
    plain = load(built_repository(tiny_world), model)
    assert isinstance(fast, FastPathBackend) and type(plain) is OnnxRuntimeBackend
    inputs = ModelInputs.from_version_dir(online, fast_repository / model / "1")
    for user, at in requests(online, hours=2, per_hour=10):
        request = inputs.request(user, at)
        matrix = request.matrix()
        (got,), expected = fast.rank([request]), plain.like_probability(matrix)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(
            rank(inputs.post_ids, got, NO_LIKES, 5), rank(inputs.post_ids, expected, NO_LIKES, 5)
        )
        fast.wait_for_build()  # an hour's first request starts its ranker; the rest use it
    # each hour: the first request plain, the other nine through that hour's ranker
    assert (fast.plain_blocks, fast.fast_blocks) == (2, 18)
    # KServe's infer and a plain matrix are the plain model's, untouched
    np.testing.assert_array_equal(
        fast.infer({"features": matrix})["probabilities"],
        plain.infer({"features": matrix})["probabilities"],
    )
    np.testing.assert_array_equal(fast.like_probability(matrix), plain.like_probability(matrix))


def test_a_batch_of_three_requests_mixes_both_paths(tiny_world, fast_repository, online):
    fast = load(fast_repository, "test")
    plain = load(built_repository(tiny_world), "test")
    inputs = ModelInputs.from_version_dir(online, fast_repository / "test" / "1")
    pairs = requests(online, hours=2, per_hour=3)
    earlier, now = pairs[:3], pairs[3:]
    # 1) nothing ready: all plain; 2) this hour's ranker ready, the earlier's not: both paths
    for batch in (now, [now[0], earlier[0], now[1]]):
        ranking = [inputs.request(user, at) for user, at in batch]
        got = fast.rank(ranking)
        assert [part.shape for part in got] == [(len(inputs.post_ids),)] * 3
        for part, request in zip(got, ranking, strict=True):
            np.testing.assert_allclose(
                part, plain.like_probability(request.matrix()), rtol=0, atol=1e-5
            )
        fast.wait_for_build()
    assert (fast.plain_blocks, fast.fast_blocks) == (3 + 1, 2)


def test_a_version_without_its_catboost_model_is_refused_by_name(fast_repository, tmp_path):
    repository = copy_repository(fast_repository, tmp_path)
    (repository / "test" / "1" / "model.cbm").unlink()
    with pytest.raises(ModelLoadError, match="model.cbm"):
        load(repository, "test")


def with_parameters(repository: Path, model: str, **parameters: str) -> None:
    config = read_config(repository / model)
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    (repository / model / CONFIG_FILE).write_text(format_config(config))


def built_rankers(backend: FastPathBackend) -> list:
    return [built.ranker for built in backend._rankers.values()]


def test_config_parameters_tune_the_merge_cost_and_the_tables_kept(
    fast_repository, online, tmp_path
):
    repository = copy_repository(fast_repository, tmp_path)
    with_parameters(repository, "control", fast_path_merge_cost="0", fast_path_cache_mb="0")
    tuned, default = load(repository, "control"), load(fast_repository, "control")
    assert isinstance(tuned, FastPathBackend) and isinstance(default, FastPathBackend)
    inputs = ModelInputs.from_version_dir(online, repository / "control" / "1")
    hours = requests(online, hours=3, per_hour=1)
    for backend in (tuned, default):
        for user, at in hours:
            request = inputs.request(user, at)
            backend.prepare(request.snapshot)
            backend.wait_for_build()
            (got,) = backend.rank([request])
            expected = backend.like_probability(request.matrix())
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    (unmerged, *_), (merged, *_) = built_rankers(tuned), built_rankers(default)
    assert len(unmerged.fastpath.groups) > len(merged.fastpath.groups)
    assert unmerged.table_bytes < merged.table_bytes
    # no budget: only the two most recent hours are kept; the default keeps all three
    assert (len(built_rankers(tuned)), len(built_rankers(default))) == (2, 3)


@pytest.mark.parametrize("value", ["cheap", "-1", "nan"])
def test_a_bad_fast_path_parameter_is_refused_by_name(fast_repository, tmp_path, value):
    repository = copy_repository(fast_repository, tmp_path)
    with_parameters(repository, "test", fast_path_merge_cost=value)
    with pytest.raises(ModelLoadError, match=f"fast_path_merge_cost must be a number.*{value}"):
        load(repository, "test")


@pytest.mark.parametrize("fast_path", [True, False])
def test_the_repository_ranks_with_the_declared_ranker(tiny_world, fast_path):
    repository = built_repository(tiny_world)
    for model in MODELS:
        assert declared_ranker(read_config(repository / model)) == "fastpath"
    loaded = ModelRepository(repository, fast_path=fast_path)
    loaded.load_all()
    backends = {v.model: v.backend for v in loaded.loaded()}
    assert set(backends) == set(MODELS)
    expected = FastPathBackend if fast_path else OnnxRuntimeBackend
    assert all(type(b) is expected for b in backends.values())


def test_a_config_declaring_no_ranker_ranks_with_its_backend(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    config = read_config(repository / "test")
    del config.parameters[RANKER_PARAMETER]
    (repository / "test" / CONFIG_FILE).write_text(format_config(config))
    loaded = ModelRepository(repository, fast_path=True)
    loaded.load_all()
    assert type(loaded.get("test").backend) is OnnxRuntimeBackend
    assert type(loaded.get("control").backend) is FastPathBackend


def test_feed_answers_equal_a_plain_server(tiny_world, online, tmp_path):
    """`feedrank serve` ranks with the declared fast path by default (config.pbtxt's backend is
    onnxruntime, for Triton), and answers exactly as the same server with `--no-fast-path`; the
    ranker is named in the model metadata, /metrics and the exposure log. Requests cycle
    through four hours: the rankers of all four stay cached, so the passes end fully fast."""
    repository = built_repository(tiny_world)
    assert 'backend: "onnxruntime"' in (repository / "test" / CONFIG_FILE).read_text()
    pairs = requests(online, hours=4, per_hour=4)
    with ServerProcess(tiny_world, repository, tmp_path / "plain", "--no-fast-path") as plain:
        with httpx.Client(base_url=plain.url, timeout=30.0) as client:
            expected = [_answer(client, user, at) for user, at in pairs]
            assert _ranking_paths(client.get("/metrics").text) == {}  # one path: no counter
            _assert_ranker_shown(client, plain, "onnxruntime")
    assert {a[0] for a in expected} == set(MODELS)
    with (
        ServerProcess(tiny_world, repository, tmp_path / "fast") as fast,
        httpx.Client(base_url=fast.url, timeout=30.0) as client,
    ):
        # the first pass starts each hour's ranker builds (answered by the plain graph meanwhile);
        # passes repeat until one is ranked entirely by the fast path
        deadline, before, passes = time.monotonic() + 120, {}, 0
        while True:
            assert [_answer(client, user, at) for user, at in pairs] == expected
            passes += 1
            after = _ranking_paths(client.get("/metrics").text)
            if passes > 1 and all(after[(m, "plain")] == before[(m, "plain")] for m in MODELS):
                break
            assert time.monotonic() < deadline, f"rankers not built: {after}"
            before = after
        _assert_ranker_shown(client, fast, "fastpath")
    assert sum(after.values()) == passes * len(pairs)
    assert all(after[(m, "fast")] > 0 for m in MODELS)


def _assert_ranker_shown(client: httpx.Client, server: ServerProcess, ranker: str) -> None:
    for model in MODELS:
        metadata = client.get(f"/v2/models/{model}").json()
        assert metadata["parameters"] == {"ranker": ranker}
    shown = {
        (s.labels["model"], s.labels["ranker"])
        for family in text_string_to_metric_families(client.get("/metrics").text)
        if family.name == "feedrank_model_ranker"
        for s in family.samples
    }
    assert shown == {(m, ranker) for m in MODELS}
    logged = set(
        duckdb.sql(f"SELECT DISTINCT model, ranker FROM ({query(server.log_dir)})").fetchall()
    )
    assert logged == {(m, ranker) for m in MODELS}


def _ranking_paths(metrics: str) -> dict[tuple[str, str], float]:
    """{(model, path): requests} from /metrics."""
    return {
        (s.labels["model"], s.labels["path"]): s.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "feedrank_ranking_path_requests"
        for s in family.samples
        if s.name.endswith("_total")
    }


def _answer(client: httpx.Client, user: int, at: np.datetime64) -> tuple:
    response = client.get(
        "/post/recommendations/",
        params={"id": user, "time": str(at.astype("datetime64[s]")), "limit": 10},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["model"], body["version"], [p["id"] for p in body["recommendations"]]


@pytest.mark.parametrize("model", MODELS)
def test_offline_scoring_goes_through_the_feeds_ranker(tiny_world, online, model):
    """`feedrank evaluate` and the replay score a version with the backend the feed ranks with
    (server/scoring.py), every request through the fast path (the same path on every run), and
    its probabilities are the model's own within 1e-5."""
    version_dir = built_repository(tiny_world) / model / "1"
    scorer = VersionScorer(online, version_dir)
    assert type(scorer.backend) is FastPathBackend
    pairs = requests(online, hours=1, per_hour=6)
    users = np.array([user for user, _ in pairs])
    times = np.array([at for _, at in pairs])
    got = scorer.probabilities(users, times)
    catboost_model = CatBoostClassifier().load_model(str(version_dir / "model.cbm"))
    expected = np.stack(
        [catboost_model.predict_proba(scorer.inputs.matrix(u, at))[:, 1] for u, at in pairs]
    )
    assert got.shape == (len(pairs), len(scorer.inputs.post_ids))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # every request on the fast path: the hour's ranker is built before its first request
    assert scorer.backend.ranking_paths() == {"fast": len(pairs), "plain": 0}
