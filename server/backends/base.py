"""The backend interface and the registry that finds backends by name.

A backend runs one model version from its folder. Backends are plugins: the registry looks the
name from `config.pbtxt` (`backend: "onnxruntime"`, or Triton's `platform: "onnxruntime_onnx"`)
up in the Python entry-point group `feedrank.backends`, so a new backend is a new module plus
one line in some package's entry points, never an edit of the server.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import ClassVar

import numpy as np
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig

from feedrank.errors import FeedrankError
from feedrank.features.ranking_request import RankingRequest, Snapshot
from feedrank.model_config import declared_ranker

ENTRY_POINT_GROUP = "feedrank.backends"
# Triton platform names that mean one of our backends
PLATFORMS = {"onnxruntime_onnx": "onnxruntime"}

# KServe v2 datatype names and their numpy types (BYTES is not a numeric tensor: no entry)
DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(t)
    for name, t in (
        ("BOOL", np.bool_),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("FP16", np.float16),
        ("FP32", np.float32),
        ("FP64", np.float64),
    )
}


class ModelLoadError(FeedrankError):
    """A model version that cannot serve: unreadable files, mismatched inputs, failed warm-up."""


class UnknownBackend(ModelLoadError):
    pass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # KServe v2 name: "FP32", "INT64", ...
    shape: tuple[int, ...]  # -1 = variable

    def as_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape)
        )

    def compatible(self, other: TensorSpec) -> bool:
        """Same name and type, and every fixed dimension of either side agrees."""
        return (
            self.name == other.name
            and self.datatype == other.datatype
            and len(self.shape) == len(other.shape)
            and all(-1 in (a, b) or a == b for a, b in zip(self.shape, other.shape))
        )


def config_tensors(config: ModelConfig, which: str) -> list[TensorSpec]:
    """`config.input` / `config.output` as specs; with max_batch_size > 0 dims exclude the batch."""
    batch = (-1,) if config.max_batch_size > 0 else ()
    return [
        TensorSpec(t.name, datatype_name(t.data_type), batch + tuple(t.dims))
        for t in getattr(config, which)
    ]


def datatype_name(data_type: int) -> str:
    name = DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


class Backend(ABC):
    """One loaded model version. `infer`, `like_probability` and `rank` must be thread-safe."""

    name: ClassVar[str]
    platform: ClassVar[str]  # what model metadata reports, as Triton does

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def __init__(self, version_dir: Path, config: ModelConfig, *, threads: int = 1) -> None:
        """Load the version's files; raise ModelLoadError when they cannot serve."""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output by name, for inputs already checked against `self.inputs`."""

    @abstractmethod
    def like_probability(self, features: np.ndarray) -> np.ndarray:
        """float32[N, F] -> float64[N]: P(class 1)."""

    def rank(self, requests: Sequence[RankingRequest]) -> list[np.ndarray]:
        """P(like) of every candidate of each feed request, in the shape of Triton's
        `execute(requests) -> responses`. The plain way: one call on the stacked matrices."""
        matrices = [request.matrix() for request in requests]
        probabilities = self.like_probability(
            matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        )
        return np.split(probabilities, np.cumsum([len(m) for m in matrices])[:-1])

    def prepare(self, snapshot: Snapshot) -> None:
        """Make ready, blocking, whatever ranking this snapshot's requests needs, so that
        offline scoring takes the same path on every run (the server never waits). Plain
        backends need nothing."""
        return None

    def ranking_paths(self) -> dict[str, int]:
        """Feed requests scored per internal path, for /metrics; empty for a one-path backend."""
        return {}

    def warm_up(self) -> None:
        """One inference on a zero row per input; any error or non-finite output refuses it."""
        sample = {
            spec.name: np.zeros([1 if d == -1 else d for d in spec.shape], DATATYPES[spec.datatype])
            for spec in self.inputs
        }
        try:
            outputs = self.infer(sample)
        except Exception as error:
            raise ModelLoadError(f"warm-up inference failed: {error}") from error
        missing = {spec.name for spec in self.outputs} - outputs.keys()
        if missing:
            raise ModelLoadError(f"warm-up: outputs {sorted(missing)} missing")
        bad = [
            name
            for name, value in outputs.items()
            if value.dtype.kind == "f" and not np.isfinite(value).all()
        ]
        if bad:
            raise ModelLoadError(f"warm-up: non-finite values in outputs {bad}")


def backend_name(config: ModelConfig) -> str:
    if config.backend:
        return config.backend
    if config.platform:
        return PLATFORMS.get(config.platform, config.platform)
    raise UnknownBackend("config.pbtxt names neither a backend nor a platform")


@functools.cache
def available_backends() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_class(name: str) -> type[Backend]:
    entry = available_backends().get(name)
    if entry is None:
        raise UnknownBackend(
            f"backend '{name}' is not installed (known: "
            f"{', '.join(sorted(available_backends())) or 'none'})"
        )
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackend(f"entry point '{name}' is not a Backend subclass")
    return cls


def feed_backend_name(config: ModelConfig, fast_path: bool = True) -> str:
    """The backend that ranks feeds with a model: the one config.pbtxt declares in its `ranker`
    parameter, else its backend; with the fast path switched off, always the config's backend."""
    declared = declared_ranker(config)
    return declared if declared and fast_path else backend_name(config)


def load_backend(
    version_dir: Path, config: ModelConfig, *, threads: int = 1, name: str | None = None
) -> Backend:
    """The version's backend: `name` if given, else the one its config names."""
    return backend_class(name or backend_name(config))(version_dir, config, threads=threads)
