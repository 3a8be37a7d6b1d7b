"""Triton's `config.pbtxt`, read and written with Triton's own `ModelConfig` protobuf schema.

A Triton model repository looks like `R/<model>/config.pbtxt` and `R/<model>/<version>/...`,
where versions are folders named by positive integers without leading zeros.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tritonclient.grpc.model_config_pb2 import ModelConfig

from feedrank.errors import FeedrankError

CONFIG_FILE = "config.pbtxt"
# config.pbtxt `parameters` entry naming the backend that ranks feeds with this model; Triton
# ignores parameters its backend does not read, so the same file serves both
RANKER_PARAMETER = "ranker"


def parse_config(text: str, *, source: str = CONFIG_FILE) -> ModelConfig:
    """Parse text-format protobuf; unknown fields and bad syntax are errors naming the file."""
    try:
        return text_format.Parse(text, ModelConfig())
    except (text_format.ParseError, DecodeError) as error:
        raise FeedrankError(f"{source}: not a valid Triton ModelConfig: {error}") from error


def read_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG_FILE
    try:
        text = path.read_text()
    except OSError as error:
        raise FeedrankError(f"{path}: cannot read model config: {error.strerror}") from error
    config = parse_config(text, source=str(path))
    if config.name != model_dir.name:
        raise FeedrankError(
            f"{path}: name '{config.name}' must equal its folder '{model_dir.name}'"
        )
    return config


def declared_ranker(config: ModelConfig) -> str | None:
    """The `ranker` parameter's backend name, None when the config declares none."""
    if RANKER_PARAMETER not in config.parameters:
        return None
    return config.parameters[RANKER_PARAMETER].string_value or None


def format_config(config: ModelConfig) -> str:
    return text_format.MessageToString(config)


def version_numbers(model_dir: Path) -> list[int]:
    """The versions on disk, ascending; folders that are not Triton version names are ignored."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and not p.name.startswith("0")
    )
