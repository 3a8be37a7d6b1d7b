"""`feedrank build`: world features → control and test models → ONNX → parity → new versions.

A model is retrained only when its inputs changed: the build fingerprint (features fingerprint,
feature list, training parameters, windows) is compared with the latest published version's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
from catboost import CatBoostClassifier
from rich.console import Console

from feedrank.errors import FeedrankError
from feedrank.export.hit_rate import choose_exposure
from feedrank.export.onnx_export import INPUT_NAME, PROBABILITY_OUTPUT, export_onnx
from feedrank.export.parity import MIN_ROWS, check_parity, require_parity
from feedrank.export.publish import (
    METADATA,
    ensure_config,
    ensure_router,
    latest_metadata,
    publish_version,
    write_json,
)
from feedrank.export.training import TrainParams, fit
from feedrank.export.windows import Windows, world_windows
from feedrank.features.build import build_features
from feedrank.features.layout import FeaturesLayout
from feedrank.features.online import ModelInputs, OnlineFeatures
from feedrank.features.text_encoder import Precision
from feedrank.features.text_pipelines import CONFIG as TEXT_PIPELINE_CONFIG
from feedrank.features.text_pipelines import VERSION_FOLDER, link_or_copy
from feedrank.model_config import CONFIG_FILE
from feedrank.world.layout import WorldLayout

MODELS = ("control", "test")
PARITY_REQUESTS = 20
EXPOSURE_REQUESTS = 1000  # validation sessions ranked to choose the exposure term


@dataclass(frozen=True)
class ModelData:
    """One model's view of the training set, split by time."""

    name: str
    specs: list[dict]
    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    requests: pl.DataFrame  # sampled (user_id, timestamp) validation requests for ranking parity

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.specs]


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split(
    table: pl.DataFrame, name: str, specs: list[dict], windows: Windows, seed: int
) -> ModelData:
    names = [s["name"] for s in specs]
    missing = sorted(set(names) - set(table.columns))
    if missing:
        raise FeedrankError(f"training set lacks features of model '{name}': {missing}")

    def xy(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return frame.select(names).to_numpy().astype(np.float32), frame["target"].to_numpy()

    ts = pl.col("timestamp")
    train = table.filter(ts < windows.valid_start)
    valid = table.filter((ts >= windows.valid_start) & (ts < windows.eval_start))
    for part, frame in (("training", train), ("validation", valid)):
        _require_both_classes(part, frame, windows)
    requests = valid.select("user_id", "timestamp").sample(
        min(PARITY_REQUESTS, valid.height), seed=seed
    )
    return ModelData(name, specs, xy(train), xy(valid), requests)


def _require_both_classes(part: str, frame: pl.DataFrame, windows: Windows) -> None:
    """CatBoost cannot learn (or validate) from one class: say which window lacks which."""
    liked = int(frame["target"].sum()) if frame.height else 0
    if frame.height and 0 < liked < frame.height:
        return
    what = (
        "no rows"
        if not frame.height
        else "only views followed by a like"
        if liked
        else "no view followed by a like"
    )
    raise FeedrankError(
        f"the {part} window has {what} ({frame.height:,} rows); a model needs "
        f"liked and not-liked views in both training and validation. Windows, "
        f"derived from the feed's views: {windows.describe()}"
    )


def parity_rows(data: ModelData) -> np.ndarray:
    """Validation rows, topped up with training rows when validation has fewer than MIN_ROWS."""
    rows = data.valid[0]
    if len(rows) < MIN_ROWS:
        rows = np.concatenate([rows, data.train[0][: MIN_ROWS - len(rows)]])
    return rows


class Builder:
    def __init__(
        self,
        world: Path,
        repository: Path,
        params: TrainParams,
        *,
        progress: bool = True,
        console: Console | None = None,
        encoder_precision: Precision = "float32",
    ) -> None:
        self.world, self.repository, self.params = world, repository, params
        self.encoder_precision = encoder_precision
        self.progress, self.console = progress, console or Console(stderr=True)
        self._online: OnlineFeatures | None = None

    @property
    def online(self) -> OnlineFeatures:
        if self._online is None:
            self._online = OnlineFeatures.load(self.world)
        return self._online

    def run(self) -> dict[str, int]:
        features = build_features(
            self.world, progress=self.progress, encoder_precision=self.encoder_precision
        )
        manifest = json.loads((features / "manifest.json").read_text())
        windows = world_windows(WorldLayout(self.world))
        # read lazily: an unchanged rebuild should not pay for loading the training set
        layout = FeaturesLayout(features)
        table = functools.cache(lambda name: pl.read_parquet(layout.training_set(name)))
        versions = {
            name: self.build_model(name, features, manifest, windows, table) for name in MODELS
        }
        if ensure_router(self.repository, versions):
            self.console.print(f"wrote {self.repository / 'router.toml'}")
        return versions

    def build_model(
        self,
        name: str,
        features: Path,
        manifest: dict,
        windows: Windows,
        table: Callable[[str], pl.DataFrame],
    ) -> int:
        specs = manifest["models"][name]
        key = fingerprint(manifest["fingerprint"], specs, self.params.identity(), windows.as_dict())
        latest = latest_metadata(self.repository / name)
        if latest and latest[1].get("build_fingerprint") == key:
            self.console.print(f"{name}: inputs unchanged, keeping version {latest[0]}")
            if ensure_config(self.repository, name, len(specs)):
                self.console.print(f"{name}: updated {self.repository / name / CONFIG_FILE}")
            return latest[0]
        data = split(table(name), name, specs, windows, self.params.seed)
        model = fit(name, self.params, data.train, data.valid, progress=self.progress)
        post_features = features / f"post_features_{name}.parquet"
        exposure, choice = choose_exposure(
            self.world,
            ModelInputs(self.online, specs, post_features),
            model,
            windows,
            requests=EXPOSURE_REQUESTS,
            seed=self.params.seed,
            threads=self.params.threads,
        )
        self.console.print(
            f"{name}: ranks by {choice.get('chosen', 'preference')} "
            f"(validation hit rate@5 of each: {_rates(choice)})"
        )
        meta = {
            "model": name,
            "features": specs,
            "input_name": INPUT_NAME,
            "output_name": PROBABILITY_OUTPUT,
            "windows": windows.as_dict(),
            "data_fingerprint": manifest["fingerprint"],
            "build_fingerprint": key,
            "features_cutoff": manifest.get("cutoff"),
            "training": training_summary(model, data),
            "catboost": self.params.catboost(),
            "exposure": exposure.as_dict(),
            "exposure_choice": choice,
            "evaluation": None,
        }
        version = publish_version(
            self.repository,
            name,
            len(specs),
            lambda folder, v: self.write_version(
                folder,
                v,
                model,
                data,
                post_features,
                features / manifest["text_pipelines"][name],
                meta,
            ),
        )
        self.console.print(
            f"{name}: published version {version} "
            f"(validation AUC {meta['training']['validation_auc']:.4f})"
        )
        return version

    def write_version(
        self,
        folder: Path,
        version: int,
        model: CatBoostClassifier,
        data: ModelData,
        post_features: Path,
        pipeline: Path,
        meta: dict,
    ) -> None:
        model.save_model(str(folder / "model.cbm"))
        export_onnx(model, folder / "model.onnx", name=data.name)
        shutil.copyfile(post_features, folder / "post_features.parquet")
        shutil.copytree(pipeline, folder / VERSION_FOLDER, copy_function=link_or_copy)
        report = check_parity(
            model,
            folder / "model.onnx",
            parity_rows(data),
            self.ranking_requests(data, folder),
            threads=self.params.threads,
        )
        require_parity(data.name, report)
        write_json(
            folder / METADATA,
            meta
            | {
                "version": version,
                "parity": report.as_dict(),
                # how a post's text becomes its text columns: the files in text_pipeline/
                "text_pipeline": json.loads((pipeline / TEXT_PIPELINE_CONFIG).read_text()),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def ranking_requests(
        self, data: ModelData, folder: Path
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        inputs = ModelInputs(self.online, data.specs, folder / "post_features.parquet")
        for user_id, at in data.requests.iter_rows():
            yield inputs.matrix(user_id, np.datetime64(at, "us")), inputs.post_ids


def _rates(choice: dict) -> str:
    return ", ".join(f"{name} {rate:.4f}" for name, rate in choice.get("hit_rates", {}).items())


def training_summary(model: CatBoostClassifier, data: ModelData) -> dict:
    """Rows, the validation metrics *of the saved model* (cut back to its best iteration), the
    trees trained and kept, and feature importances."""
    history = model.get_evals_result()["validation"]
    best = model.get_best_iteration()
    importance = sorted(
        zip(data.names, model.get_feature_importance().round(3).tolist()), key=lambda pair: -pair[1]
    )
    return {
        "train_rows": len(data.train[1]),
        "validation_rows": len(data.valid[1]),
        "train_positive_rate": float(data.train[1].mean()),
        "validation_auc": history["AUC"][best],
        "validation_logloss": history["Logloss"][best],
        "trees_trained": len(history["AUC"]),
        "trees_kept": model.tree_count_,
        "learning_rate": float(model.learning_rate_),
        "validation_auc_all_trees": history["AUC"][-1],
        "feature_importance": importance,
    }  # a list: JSON objects lose the order
