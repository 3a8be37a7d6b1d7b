"""Small real model repositories for the model-server tests: a tiny CatBoost classifier trained
on seeded random data, saved as model.cbm and exported to ONNX by CatBoost's own exporter, with
config.pbtxt written by the same code `feedrank build` uses. Real files, real sessions."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from catboost import CatBoostClassifier
from tritonclient.grpc import model_config_pb2 as mc

from feedrank.export.onnx_export import export_onnx
from feedrank.export.publish import model_config
from feedrank.model_config import CONFIG_FILE, format_config

N_FEATURES = 6


@functools.cache
def trained(seed: int, n_features: int = N_FEATURES) -> CatBoostClassifier:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, n_features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = CatBoostClassifier(iterations=15, depth=3, random_seed=seed, thread_count=1,
                               verbose=False, allow_writing_files=False)
    return model.fit(x, y)


def rows(n: int, seed: int = 1, n_features: int = N_FEATURES) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n_features)).astype(np.float32)


def write_config(root: Path, name: str, *, n_features: int = N_FEATURES,
                 policy: str = "latest2", backend: str = "onnxruntime") -> Path:
    """policy: "latestN", "all" or "specific:1,3"."""
    config = model_config(name, n_features)
    config.backend = backend
    config.version_policy.Clear()
    if policy == "all":
        config.version_policy.all.SetInParent()
    elif policy.startswith("specific:"):
        config.version_policy.specific.versions.extend(int(v) for v in policy[9:].split(","))
    else:
        config.version_policy.latest.num_versions = int(policy.removeprefix("latest"))
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(format_config(config))
    return folder


def write_version(root: Path, name: str, version: int, *, seed: int | None = None,
                  n_features: int = N_FEATURES, zipmap: bool = False) -> Path:
    """A version trained with `seed` (default: the version number), so versions differ."""
    model = trained(version if seed is None else seed, n_features)
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    model.save_model(str(folder / "model.cbm"))
    if zipmap:  # CatBoost's raw export, ZipMap included
        model.save_model(str(folder / "model.onnx"), format="onnx")
    else:
        export_onnx(model, folder / "model.onnx", name=name)
    (folder / "metadata.json").write_text(json.dumps({
        "model": name, "version": version, "input_name": "features",
        "output_name": "probabilities",
        "features": [{"name": f"f{i}", "source": "user"} for i in range(n_features)]}))
    return folder


def make_repository(root: Path, models: dict[str, list[int]], **config: object) -> Path:
    for name, versions in models.items():
        write_config(root, name, **config)  # type: ignore[arg-type]
        for version in versions:
            write_version(root, name, version)
    return root


__all__ = ["mc", "make_repository", "rows", "trained", "write_config", "write_version"]
