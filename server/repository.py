"""The model repository: Triton's layout on disk, the loaded versions in memory.

`R/<model>/config.pbtxt` names the backend and the version policy; `R/<model>/<v>/` holds a
version. Loading a version means: the backend opens its files, its tensors are checked against
config.pbtxt and metadata.json, and a warm-up inference runs; any failure refuses the version
with a recorded reason (see `index()`) and the versions already serving keep serving.

Swaps are atomic: a model's loaded versions live in one dict that is replaced, never mutated, once
every new version is ready. `get()` reads it without a lock and returns a `LoadedVersion`; a
request keeps that object to the end, so a swap or an unload never changes a request half-way
(the old backend is freed when the last request holding it finishes).

Poll mode (`start_polling`) rescans the folder: new or changed versions are loaded, versions gone
from disk or out of policy are dropped, a model folder removed is unloaded. A snapshot of file
sizes and mtimes per model makes a rescan of an unchanged repository cheap and quiet.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonclient.grpc.model_config_pb2 import ModelConfig, ModelVersionPolicy

from feedrank.errors import FeedrankError
from feedrank.model_config import CONFIG_FILE, read_config, version_numbers
from feedrank.server.backends.base import (
    Backend,
    ModelLoadError,
    config_tensors,
    feed_backend_name,
    load_backend,
)

log = logging.getLogger("feedrank.server.repository")

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
METADATA = "metadata.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ModelNotFound(FeedrankError, LookupError):
    """The model (or version) is not loaded."""


class InvalidName(FeedrankError, ValueError):
    """A model name that could leave the repository folder or is not a folder name."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid model name {name!r}: letters, digits, '_', '-', '.' only "
            "(no '..', no '/'), at most 128 characters"
        )
    return name


@dataclass(frozen=True)
class LoadedVersion:
    model: str
    version: int
    path: Path
    backend: Backend
    metadata: dict


@dataclass(frozen=True)
class VersionStatus:
    state: str
    reason: str = ""


def select_versions(policy: ModelVersionPolicy, on_disk: list[int]) -> list[int]:
    """Triton's version_policy over the versions on disk (default: the latest one)."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(on_disk)
    if kind == "specific":
        return sorted(set(policy.specific.versions) & set(on_disk))
    count = policy.latest.num_versions if kind == "latest" else 1
    return on_disk[-max(count, 1) :] if on_disk else []


def _stat_signature(folder: Path) -> tuple:
    """Names, sizes and mtimes of every file under `folder`: changes when a file is replaced."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )


def _snapshot(model_dir: Path) -> tuple:
    config = model_dir / CONFIG_FILE
    stat = config.stat() if config.exists() else None
    return (
        (stat.st_size, stat.st_mtime_ns) if stat else None,
        tuple((v, _stat_signature(model_dir / str(v))) for v in version_numbers(model_dir)),
    )


def _read_metadata(version_dir: Path) -> dict:
    path = version_dir / METADATA
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: unreadable: {error}") from error


def validate(backend: Backend, config: ModelConfig, metadata: dict) -> None:
    """The backend's tensors must be the ones config.pbtxt and metadata.json promise."""
    declared = {spec.name: spec for spec in config_tensors(config, "input")}
    actual = {spec.name: spec for spec in backend.inputs}
    if declared.keys() != actual.keys():
        raise ModelLoadError(
            f"model inputs {sorted(actual)} do not match config.pbtxt inputs {sorted(declared)}"
        )
    outputs = {spec.name: spec for spec in backend.outputs}
    for spec in [*declared.values(), *config_tensors(config, "output")]:
        real = actual.get(spec.name) or outputs.get(spec.name)
        if real is None or not real.compatible(spec):
            raise ModelLoadError(
                f"config.pbtxt declares {spec.as_dict()}, the model has "
                f"{real.as_dict() if real else 'no such tensor'}"
            )
    if "input_name" in metadata and metadata["input_name"] not in actual:
        raise ModelLoadError(
            f"metadata.json input_name '{metadata['input_name']}' is not a "
            f"model input ({sorted(actual)})"
        )
    if "features" in metadata:
        width = backend.inputs[0].shape[-1]
        if width not in (-1, len(metadata["features"])):
            raise ModelLoadError(
                f"metadata.json lists {len(metadata['features'])} features, "
                f"the model input takes {width}"
            )


class ModelRepository:
    def __init__(self, root: Path, *, threads: int = 1, fast_path: bool = False) -> None:
        self.root, self.threads, self.fast_path = Path(root), threads, fast_path
        self._serving: dict[str, dict[int, LoadedVersion]] = {}  # per model: replaced, not mutated
        self._status: dict[str, dict[int, VersionStatus]] = {}
        self._model_error: dict[str, str] = {}
        self._unloaded: set[str] = set()  # explicitly unloaded: the poll leaves them alone
        self._seen: dict[str, tuple] = {}  # disk snapshot at the last load attempt
        self._signatures: dict[tuple[str, int], tuple] = {}  # files of each loaded version
        self._lock = threading.RLock()  # serialises loads; held for seconds
        self._state = threading.Lock()  # status tables only: never held across a load
        self._poller: tuple[threading.Thread, threading.Event] | None = None

    # -- reading (lock-free: the serving dicts are never mutated in place) --

    def get(self, model: str, version: int | None = None) -> LoadedVersion:
        versions = self._serving.get(model)
        if not versions:
            raise ModelNotFound(f"model '{model}' is not loaded")
        if version is None:
            return versions[max(versions)]  # Triton's default: the highest loaded version
        loaded = versions.get(version)
        if loaded is None:
            raise ModelNotFound(
                f"model '{model}' version {version} is not loaded "
                f"(loaded: {', '.join(map(str, versions))})"
            )
        return loaded

    def has(self, model: str, version: int) -> bool:
        return version in self._serving.get(model, {})

    def versions(self, model: str) -> list[int]:
        return list(self._serving.get(model, {}))

    def models(self) -> list[str]:
        return sorted(self._serving)

    def loaded(self) -> list[LoadedVersion]:
        """Every version serving now, from one snapshot."""
        return [
            loaded
            for _, versions in sorted(self._serving.items())
            for _, loaded in sorted(versions.items())
        ]

    def ready(self) -> bool:
        """Every model in the repository that is not explicitly unloaded has a version serving."""
        with self._state:
            wanted = (set(self._status) | set(self._model_error)) - self._unloaded
        return all(self._serving.get(m) for m in wanted)

    def index(self) -> list[dict[str, Any]]:
        """Triton's repository index: one entry per known version, plus models never loaded."""
        on_disk = self.names_on_disk()
        with self._state:
            names = sorted(set(on_disk) | set(self._status) | set(self._model_error))
            entries = []
            for name in names:
                statuses = self._status.get(name, {})
                if name in self._model_error or not statuses:
                    entries.append(
                        {
                            "name": name,
                            "version": "",
                            "state": UNAVAILABLE,
                            "reason": self._model_error.get(name, "not loaded"),
                        }
                    )
                # a version gone from disk and from serving is no longer in the repository
                entries += [
                    {"name": name, "version": str(v), "state": s.state, "reason": s.reason}
                    for v, s in sorted(statuses.items())
                    if s.state != UNAVAILABLE or (self.root / name / str(v)).is_dir()
                ]
            return entries

    def names_on_disk(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if (p / CONFIG_FILE).is_file() and _NAME.fullmatch(p.name)
        )

    # -- model control --

    def load_all(self) -> None:
        """Load every model on disk; a model that fails is logged and recorded, not fatal."""
        for name in self.names_on_disk():
            try:
                self.load(name)
            except FeedrankError:
                pass  # already logged and visible in index()

    def load(self, model: str) -> None:
        """Load or reload `model` per its version_policy; raises ModelLoadError if any wanted
        version was refused (the versions serving before keep serving)."""
        check_name(model)
        with self._lock:
            with self._state:
                self._unloaded.discard(model)
            self._load_locked(model)

    def unload(self, model: str) -> None:
        check_name(model)
        with self._lock:
            if model not in self._serving and not (self.root / model).is_dir():
                raise ModelNotFound(f"model '{model}' is not in the repository")
            self._seen.pop(model, None)
            removed = self._serving.pop(model, {})
            with self._state:
                self._unloaded.add(model)
                self._status[model] = {
                    v: VersionStatus(UNAVAILABLE, "unloaded") for v in self._status.get(model, {})
                }
        if removed:
            log.info("unloaded %s versions %s", model, sorted(removed))

    def _load_locked(self, model: str) -> None:
        model_dir = self.root / model
        if not (model_dir / CONFIG_FILE).is_file():
            raise ModelNotFound(f"model '{model}' is not in the repository {self.root}")
        self._seen[model] = _snapshot(model_dir)
        try:
            config = read_config(model_dir)
            wanted = select_versions(config.version_policy, version_numbers(model_dir))
            if not wanted:
                raise ModelLoadError(f"{model_dir}: no version folder matches the version_policy")
        except FeedrankError as error:
            with self._state:
                self._model_error[model] = str(error)
            log.error("model %s refused: %s", model, error)
            raise ModelLoadError(str(error)) from error
        with self._state:
            self._model_error.pop(model, None)
        self._swap(model, config, wanted)

    def _swap(self, model: str, config: ModelConfig, wanted: list[int]) -> None:
        current = self._serving.get(model, {})
        status = dict(self._status.get(model, {}))
        fresh: dict[int, LoadedVersion] = {}
        failures: dict[int, str] = {}
        on_disk = dict(self._seen[model][1])
        for version in wanted:
            if version in current and self._signatures.get((model, version)) == on_disk[version]:
                fresh[version] = current[version]
                continue
            self._mark(model, version, VersionStatus(LOADING))
            try:
                fresh[version] = self._load_version(model, version, config)
                self._signatures[(model, version)] = on_disk[version]
                status[version] = VersionStatus(READY)
                log.info("loaded %s version %d (%s)", model, version, fresh[version].backend.name)
            except ModelLoadError as error:
                failures[version] = str(error)
                log.error("%s version %d refused: %s", model, version, error)
        if failures:
            # a refused version displaces nothing: what served before keeps serving
            kept = {v: lv for v, lv in current.items() if v not in fresh and lv.path.is_dir()}
            fresh |= kept
        for version, reason in failures.items():
            status[version] = VersionStatus(
                READY if version in fresh else UNAVAILABLE,
                f"reload refused, serving the earlier files: {reason}"
                if version in fresh
                else reason,
            )
        published = dict(sorted(fresh.items()))
        self._serving[model] = published  # the atomic swap: one reference replaced
        for version in current.keys() - published.keys():
            status[version] = VersionStatus(
                UNAVAILABLE, "unloaded: not in the version_policy or removed from disk"
            )
            log.info("unloaded %s version %d", model, version)
        with self._state:
            self._status[model] = status
        if failures:
            raise ModelLoadError(
                "; ".join(f"{model} version {v}: {r}" for v, r in failures.items())
            )

    def _mark(self, model: str, version: int, status: VersionStatus) -> None:
        with self._state:
            self._status[model] = {**self._status.get(model, {}), version: status}

    def _load_version(self, model: str, version: int, config: ModelConfig) -> LoadedVersion:
        path = self.root / model / str(version)
        try:
            metadata = _read_metadata(path)
            backend = load_backend(
                path, config, threads=self.threads, name=feed_backend_name(config, self.fast_path)
            )
            validate(backend, config, metadata)
            backend.warm_up()
        except ModelLoadError:
            raise
        except Exception as error:  # a plugin's unexpected failure must not take the server down
            raise ModelLoadError(f"{type(error).__name__}: {error}") from error
        return LoadedVersion(model, version, path, backend, metadata)

    # -- poll mode --

    def poll_once(self) -> None:
        """Load new and changed models, unload models removed from disk."""
        on_disk = set(self.names_on_disk())
        with self._lock:
            for name in sorted(on_disk - self._unloaded):
                if self._seen.get(name) == _snapshot(self.root / name):
                    continue
                try:
                    self._load_locked(name)
                except FeedrankError:
                    pass  # logged and in index(); the serving versions are unchanged
            for name in sorted(set(self._serving) - on_disk):
                log.info("model %s removed from disk", name)
                self.unload(name)

    def start_polling(self, interval_s: float) -> None:
        if self._poller is not None or interval_s <= 0:
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval_s):
                try:
                    self.poll_once()
                except Exception:  # the poll must outlive any one bad rescan
                    log.exception("repository poll failed")

        thread = threading.Thread(target=run, name="repository-poll", daemon=True)
        self._poller = (thread, stop)
        thread.start()

    def stop_polling(self) -> None:
        if self._poller is not None:
            thread, stop = self._poller
            stop.set()
            thread.join()
            self._poller = None
