"""Small real model repositories for the model-server tests: a tiny CatBoost classifier trained
on seeded random data, saved as model.cbm and exported to ONNX by CatBoost's own exporter, with
config.pbtxt written by the same code `feedrank build` uses. Real files, real sessions."""

from __future__ import annotations

import functools
import json
import socket
import threading
from pathlib import Path

import numpy as np
import uvicorn
from catboost import CatBoostClassifier

from feedrank.export.onnx_export import export_onnx
from feedrank.export.publish import model_config
from feedrank.model_config import CONFIG_FILE, format_config

N_FEATURES = 6


@functools.cache
def trained(seed: int, n_features: int = N_FEATURES) -> CatBoostClassifier:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, n_features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = CatBoostClassifier(
        iterations=15,
        depth=3,
        random_seed=seed,
        thread_count=1,
        verbose=False,
        allow_writing_files=False,
    )
    return model.fit(x, y)


def rows(n: int, seed: int = 1, n_features: int = N_FEATURES) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n_features)).astype(np.float32)


def write_config(
    root: Path,
    name: str,
    *,
    n_features: int = N_FEATURES,
    policy: str = "latest2",
    backend: str = "onnxruntime",
) -> Path:
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


def write_version(
    root: Path,
    name: str,
    version: int,
    *,
    seed: int | None = None,
    n_features: int = N_FEATURES,
    zipmap: bool = False,
) -> Path:
    """A version trained with `seed` (default: the version number), so versions differ."""
    model = trained(version if seed is None else seed, n_features)
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    model.save_model(str(folder / "model.cbm"))
    if zipmap:  # CatBoost's raw export, ZipMap included
        model.save_model(str(folder / "model.onnx"), format="onnx")
    else:
        export_onnx(model, folder / "model.onnx", name=name)
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "model": name,
                "version": version,
                "input_name": "features",
                "output_name": "probabilities",
                "features": [{"name": f"f{i}", "source": "user"} for i in range(n_features)],
            }
        )
    )
    return folder


def make_repository(root: Path, models: dict[str, list[int]], **config: object) -> Path:
    for name, versions in models.items():
        write_config(root, name, **config)  # type: ignore[arg-type]
        for version in versions:
            write_version(root, name, version)
    return root


class UvicornThread:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread, for tests in this process."""

    def __init__(self, app: object) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


def install_backend_plugin(
    site: Path, module: str, source: str, backend: str, class_name: str
) -> None:
    """Install a backend the way a third-party package would: a module and a dist-info whose
    entry_points.txt declares it in `feedrank.backends`. Put `site` on sys.path to activate it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[feedrank.backends]\n{backend} = {module}:{class_name}\n"
    )
