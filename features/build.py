"""`build_features(W)`: a world's Parquet tables -> W/features/ (see FeaturesLayout).

Skips all work when the inputs' fingerprint (files, sizes, mtimes, feature code, parameters)
matches the manifest of the last complete build; the manifest is written last, so a build that
died half-way is never taken for a complete one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from rich.progress import Progress

from feedrank.errors import FeedrankError, InputFileError
from feedrank.features.affinity import COLUMNS as AFFINITY_COLUMNS
from feedrank.features.affinity import PREFIX as AFFINITY_PREFIX
from feedrank.features.embeddings import EmbeddingCache
from feedrank.features.fingerprint import fingerprint
from feedrank.features.history import audience_columns
from feedrank.features.history_store import bounded_duckdb, build_history
from feedrank.features.layout import FeaturesLayout
from feedrank.features.online import TEXT_CLUSTER, OnlineFeatures
from feedrank.features.recency import COLUMNS as RECENT_COLUMNS
from feedrank.features.specs import FeatureSpec
from feedrank.features.text import fit_text
from feedrank.features.text_encoder import Precision
from feedrank.features.text_pipelines import TextPipeline, save_pipeline
from feedrank.features.timefeatures import COLUMNS as TIME_COLUMNS
from feedrank.features.training import sample_views, training_set
from feedrank.features.users import user_features
from feedrank.progress import progress_bar
from feedrank.world.layout import WorldLayout

MAX_TRAINING_ROWS = 1_500_000
LIFTS = ("hist_user_lift", "hist_post_lift", "hist_text_cluster_lift")
TOPIC_LIFTS = ("hist_user_topic_lift", *audience_columns("topic"))
REQUIRED = {
    "users": ("user_id", "gender", "age", "country", "city", "exp_group", "os", "source"),
    "posts": ("post_id", "text", "topic"),
    "feed_glob": ("timestamp", "user_id", "post_id", "action", "target"),
}
STEPS = 7


def build_features(
    world: Path,
    *,
    progress: bool = True,
    max_rows: int = MAX_TRAINING_ROWS,
    seed: int = 0,
    n_components: int = 24,
    n_clusters: int = 16,
    encoder_precision: Precision = "float32",
) -> Path:
    layout, files = WorldLayout(Path(world)), FeaturesLayout(Path(world) / "features")
    _check_inputs(layout)
    parameters = {
        "max_rows": max_rows,
        "seed": seed,
        "n_components": n_components,
        "n_clusters": n_clusters,
        "encoder_precision": encoder_precision,
    }
    digest = fingerprint(layout, parameters)
    if _manifest(files).get("fingerprint") == digest:
        return files.root
    files.root.mkdir(parents=True, exist_ok=True)
    files.manifest.unlink(missing_ok=True)
    with progress_bar() if progress else contextlib.nullcontext() as bar:
        step, seconds = _steps(bar)
        step("user features")
        user_features(layout.users).write_parquet(files.users)
        step("post features (TF-IDF, MiniLM, PCA, KMeans; applied as ONNX)")
        cache = EmbeddingCache(
            files.embedding_cache, files.text_encoder, precision=encoder_precision
        )
        tables = _post_features(layout, files, cache, seed, n_components, n_clusters, bar)
        for name, table in tables.items():
            table.write_parquet(files.post_features(name))
        step("event tables")
        _write_events(layout, files)
        step("history indexes")
        models = _model_specs(files)
        build_history({"views": files.views, "likes": files.likes}, files.history)
        online = OnlineFeatures.load(layout.root)
        step("training sample")
        sample = sample_views(layout.feed_glob, max_rows, seed)
        for name, posts in tables.items():
            step(f"{name} training set ({sample.height:,} rows)")
            training_set(online, models[name], posts, sample).write_parquet(
                files.training_set(name)
            )
        step("features built")
    _write_manifest(files, digest, parameters, models, online, sample, seconds)
    return files.root


def _steps(bar: Progress | None) -> tuple[Callable[[str], None], dict[str, float]]:
    """step(name): finish the previous step of the build and show the next one's name; and the
    seconds each finished step took, by name (kept in the manifest: where a build's time goes)."""
    seconds: dict[str, float] = {}
    current, since = "", time.monotonic()
    task = bar.add_task("features", total=STEPS) if bar is not None else None
    done = iter(range(STEPS + 1))

    def step(name: str) -> None:
        nonlocal current, since
        if current:
            seconds[current] = round(time.monotonic() - since, 2)
        current, since = name, time.monotonic()
        if bar is not None and task is not None:
            bar.update(task, completed=next(done), description=name)

    return step, seconds


def _check_inputs(layout: WorldLayout) -> None:
    if not layout.feed_dir.is_dir() or not any(layout.feed_dir.glob("*.parquet")):
        raise InputFileError(layout.feed_dir, "no feed_data/*.parquet files")
    for attribute, columns in REQUIRED.items():
        source = getattr(layout, attribute)
        if attribute != "feed_glob" and not Path(source).exists():
            raise InputFileError(source, "file not found")
        try:
            present = {
                r[0]
                for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{source}')").fetchall()  # type: ignore[union-attr]
            }
        except duckdb.Error as error:
            raise InputFileError(source, f"not readable as Parquet: {error}") from None
        for column in columns:
            if column not in present:
                raise InputFileError(source, "required column is missing", column=column)


def _manifest(files: FeaturesLayout) -> dict:
    try:
        return json.loads(files.manifest.read_text())
    except (OSError, ValueError):
        return {}


def _post_features(
    layout: WorldLayout,
    files: FeaturesLayout,
    cache: EmbeddingCache,
    seed: int,
    n_components: int,
    n_clusters: int,
    bar: Progress | None,
) -> dict[str, pl.DataFrame]:
    """Each model's post table: the topic columns, then its text pipeline's columns, computed
    by the pipeline saved for the model versions (the path a post the build never saw takes)."""
    posts = duckdb.sql(  # type: ignore[union-attr]  # a SELECT: never None
        f"SELECT post_id, coalesce(text, '') AS text, topic "
        f"FROM read_parquet('{layout.posts}') ORDER BY post_id"
    ).pl()
    if posts.is_empty():
        raise InputFileError(layout.posts, "no posts")
    texts = posts["text"].to_list()
    fitted = fit_text(texts, cache.encode(texts, bar), seed, n_components, n_clusters)
    topics = sorted(posts["topic"].unique().to_list())
    tables = {}
    for name, model in fitted.items():
        folder = files.text_pipeline(name)
        encoder = cache if name == "test" else None
        save_pipeline(folder, name, model, topics, encoder)
        # the saved graph and words, with the encoder and vectors already in memory
        tables[name] = TextPipeline(folder, encoder).post_table(posts)
    return tables


def _write_events(layout: WorldLayout, files: FeaturesLayout) -> None:
    """The feed's views and likes, sorted by time: the input of every history feature."""
    with bounded_duckdb(files.root / "sort.tmp") as db:
        for action, path in (("view", files.views), ("like", files.likes)):
            db.execute(f"""COPY (SELECT user_id, post_id, timestamp
                             FROM read_parquet('{layout.feed_glob}') WHERE action = '{action}'
                             ORDER BY timestamp, user_id, post_id)
                       TO '{path}' (FORMAT parquet)""")


def _model_specs(files: FeaturesLayout) -> dict[str, list[FeatureSpec]]:
    """Control: user + topic/TF-IDF + time + the lifts of the user, the user by topic (its own,
    its audience's, and its own smoothed toward its audience's), the post and its TF-IDF
    cluster + the post's recent activity. Test: the same with its clusters in
    embedding space, then the embedding columns, the user by embedding cluster and the user's
    taste in embedding space (affinity). Counts and the month are left out on purpose: they
    drift between the training and serving windows (docs/models.md)."""
    user_columns = [c for c in pl.read_parquet_schema(files.users) if c != "user_id"]
    post_columns = [
        c
        for c in pl.read_parquet_schema(files.posts_control)
        if c not in ("post_id", TEXT_CLUSTER) and not c.startswith(AFFINITY_PREFIX)
    ]
    embedding_columns = [
        c for c in pl.read_parquet_schema(files.posts_test) if c.startswith("emb_")
    ]
    control = (
        [FeatureSpec(n, "user") for n in user_columns]
        + [FeatureSpec(n, "post") for n in post_columns]
        + [FeatureSpec(n, "time") for n in TIME_COLUMNS if n != "time_month"]
        + [FeatureSpec(n, "history") for n in LIFTS + TOPIC_LIFTS]
        + [FeatureSpec(n, "recent") for n in RECENT_COLUMNS]
    )
    test = (
        control
        + [FeatureSpec(n, "post") for n in embedding_columns]
        + [FeatureSpec("hist_user_cluster_lift", "history")]
        + [FeatureSpec(n, "affinity") for n in AFFINITY_COLUMNS]
    )
    return {"control": control, "test": test}


def _write_manifest(
    files: FeaturesLayout,
    digest: str,
    parameters: dict,
    models: dict[str, list[FeatureSpec]],
    online: OnlineFeatures,
    sample: pl.DataFrame,
    seconds: dict[str, float],
) -> None:
    if sample.is_empty():
        raise FeedrankError(f"{files.root}: the feed has no view rows to train on")
    manifest = {
        "fingerprint": digest,
        "parameters": parameters,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cutoff": str(online.cutoff),
        "training_rows": sample.height,
        "training_window": [str(sample["timestamp"].min()), str(sample["timestamp"].max())],
        "models": {m: [s.as_dict() for s in specs] for m, specs in models.items()},
        "post_features": {"control": files.posts_control.name, "test": files.posts_test.name},
        "text_pipelines": {m: str(files.text_pipeline(m).relative_to(files.root)) for m in models},
        "seconds": seconds,
    }
    files.manifest.write_text(json.dumps(manifest, indent=2))
