"""One catalogue: the feed ranks a version's candidates only if they are the world's posts, and
a version's inputs come from the metadata the repository read at load."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from feedrank.errors import FeedrankError
from feedrank.features.online import OnlineFeatures
from feedrank.server.catalogue import InputsCache, ModelUnavailable, PostCatalog
from feedrank.server.repository import ModelRepository

from feed_serving import built_repository, copy_repository


def _loaded(repository: Path, model: str = "test"):
    loaded = ModelRepository(repository, fast_path=True)
    loaded.load_all()
    return loaded.get(model)


def _add_a_stranger(repository: Path) -> pl.DataFrame:
    """Give the test version a candidate post the world does not have; the original posts."""
    posts_file = repository / "test" / "1" / "post_features.parquet"
    posts = pl.read_parquet(posts_file)
    stranger = posts.head(1).with_columns(
        pl.lit(10**7, dtype=posts["post_id"].dtype).alias("post_id")
    )
    pl.concat([posts, stranger]).write_parquet(posts_file)
    return posts


def test_a_version_built_on_other_posts_is_refused_by_name(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    _add_a_stranger(repository)
    online = OnlineFeatures.load(tiny_world)
    with ThreadPoolExecutor(1) as pool:
        inputs = InputsCache(online, PostCatalog(tiny_world), pool)
        with pytest.raises(FeedrankError, match=r"1 candidate posts are not in the world's post"):
            inputs.warm(_loaded(repository))


def test_inputs_use_the_metadata_read_at_load(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    loaded = _loaded(repository)
    # metadata.json replaced after the load: the inputs still follow what the version loaded with
    metadata_file = repository / "test" / "1" / "metadata.json"
    metadata_file.write_text(json.dumps({"features": []}))
    online = OnlineFeatures.load(tiny_world)
    with ThreadPoolExecutor(1) as pool:
        cache = InputsCache(online, PostCatalog(tiny_world), pool)
        built = asyncio.run(cache.get(loaded))
    assert built.feature_names == [f["name"] for f in loaded.metadata["features"]]
    assert len(built.feature_names) > 0


def test_a_version_whose_inputs_fail_answers_unavailable_and_is_not_rebuilt(tiny_world, tmp_path):
    repository = copy_repository(built_repository(tiny_world), tmp_path)
    posts = _add_a_stranger(repository)
    loaded = _loaded(repository)
    online = OnlineFeatures.load(tiny_world)
    with ThreadPoolExecutor(1) as pool:
        cache = InputsCache(online, PostCatalog(tiny_world), pool)
        with pytest.raises(ModelUnavailable, match="test version 1: .* not in the world's post"):
            asyncio.run(cache.get(loaded))
        # the failure is remembered: fixing the file does not make this loaded version rebuild
        posts.write_parquet(repository / "test" / "1" / "post_features.parquet")
        with pytest.raises(ModelUnavailable, match="not in the world's post"):
            asyncio.run(cache.get(loaded))
