"""Publishing versions into a Triton-layout model repository.

A version is written into a hidden scratch folder inside `R/<model>/` (same filesystem) and made
visible with one `os.rename` to the next free number: readers never see half a version, and a
rename onto an existing version fails instead of overwriting it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from feedrank.errors import FeedrankError
from feedrank.export.onnx_export import INPUT_NAME, LABEL_OUTPUT, PROBABILITY_OUTPUT
from feedrank.model_config import (
    CONFIG_FILE,
    RANKER_PARAMETER,
    format_config,
    read_config,
    version_numbers,
)

METADATA = "metadata.json"
ROUTER = "router.toml"
KEEP_VERSIONS = 2
FEED_RANKER = "fastpath"  # the backend that ranks the feed (docs/fastpath.md)

ROUTER_TEMPLATE = """\
# Which model version ranks each experiment group's feed. Users fall into md5 buckets 0..99
# (md5 of salt + user id); bucket ranges are inclusive. Edit freely: `feedrank build` writes this
# file only when it is absent.
salt = "feedrank"

[[groups]]
name = "control"
buckets = [0, 49]
model = "control"
version = {control}

[[groups]]
name = "test"
buckets = [50, 99]
model = "test"
version = {test}
"""


def model_config(name: str, n_features: int) -> mc.ModelConfig:
    """Triton serves `model.onnx` with its onnxruntime backend; feedrank ranks feeds with the
    ranker the `ranker` parameter declares (Triton ignores parameters it does not know)."""
    config = mc.ModelConfig(name=name, backend="onnxruntime", max_batch_size=0)
    config.parameters[RANKER_PARAMETER].string_value = FEED_RANKER
    config.input.add(name=INPUT_NAME, data_type=mc.TYPE_FP32, dims=[-1, n_features])
    config.output.add(name=LABEL_OUTPUT, data_type=mc.TYPE_INT64, dims=[-1])
    config.output.add(name=PROBABILITY_OUTPUT, data_type=mc.TYPE_FP32, dims=[-1, 2])
    config.version_policy.latest.num_versions = KEEP_VERSIONS
    return config


def latest_metadata(model_dir: Path) -> tuple[int, dict] | None:
    versions = version_numbers(model_dir)
    if not versions:
        return None
    return versions[-1], read_json(model_dir / str(versions[-1]) / METADATA)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FeedrankError(f"{path}: cannot read: {error}") from error


FILE_MODE, FOLDER_MODE = 0o644, 0o755


def write_json(path: Path, data: dict) -> None:
    """Atomic replace: a reader sees the old file or the new one, never a torn one."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as tmp:
        tmp.write(text)
    # readable as a file written in place would be: servers often run as another user
    os.chmod(tmp.name, FILE_MODE)
    os.replace(tmp.name, path)


def publish_version(
    repository: Path, name: str, n_features: int, write: Callable[[Path, int], None]
) -> int:
    """Create the next version of `name`: `write(folder, version)` fills the scratch folder."""
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=model_dir, prefix=".publishing-"))
    try:
        version = (version_numbers(model_dir) or [0])[-1] + 1
        write(scratch, version)
        os.chmod(scratch, FOLDER_MODE)  # mkdtemp's folder is its owner's only
        target = model_dir / str(version)
        try:
            os.rename(scratch, target)  # fails (never replaces) if the folder appeared meanwhile
        except OSError as error:
            raise FeedrankError(f"{target}: cannot publish: {error.strerror}") from error
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    ensure_config(repository, name, n_features)
    return version


def ensure_config(repository: Path, name: str, n_features: int) -> bool:
    """Write the model's config.pbtxt unless it already is the current one (a repository
    published by an earlier release gains what it lacks, e.g. the declared ranker). Parameters
    the build does not write (an operator's tuning of the ranker, docs/fastpath.md) are kept."""
    path = repository / name / CONFIG_FILE
    config = model_config(name, n_features)
    for key, value in _parameters(repository / name).items():
        if key not in config.parameters:
            config.parameters[key].CopyFrom(value)
    text = format_config(config)
    if path.is_file() and path.read_text() == text:
        return False
    write_text(path, text)
    return True


def _parameters(model_dir: Path) -> dict[str, mc.ModelParameter]:
    """The `parameters` of the model's config; none when it is missing or unreadable (it is
    rewritten whole then)."""
    try:
        return dict(read_config(model_dir).parameters)
    except FeedrankError:
        return {}


def ensure_router(repository: Path, versions: dict[str, int]) -> bool:
    """Write `R/router.toml` pointing at `versions` unless a router is already there."""
    path = repository / ROUTER
    if path.exists():
        return False
    write_text(path, ROUTER_TEMPLATE.format(**versions))
    return True
