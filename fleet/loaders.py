"""Loading a fleet: packaged defaults, YAML parsing with field-naming errors, the round-trip-time matrix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from fleet.config import FleetConfig
from fleet.errors import ConfigError
from fleet.routing import LatencyConfig, valid_rtt_ms

DEFAULT_FLEET_RESOURCE = "fleet_default.yaml"
DEFAULT_RTT_RESOURCE = "aws_interregion_p50_ms.json"


def packaged_data(name: str) -> Path:
    """Path of a file shipped in `fleet/data` (the default fleet, the latency matrix)."""
    return Path(str(resources.files("fleet").joinpath("data", name)))


def format_validation_errors(error: ValidationError) -> str:
    """One line per field error, `  location: message`: how every config error names its fields."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)


def parse_fleet(data: Any, source: str = "<fleet>") -> FleetConfig:
    """Validate a fleet from parsed YAML/JSON; raise ConfigError naming each bad field and why."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a fleet config must be a mapping, got {type(data).__name__}")
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid fleet config\n{format_validation_errors(error)}") from None


def load_fleet(path: str | Path | None = None) -> FleetConfig:
    """Load a fleet from a YAML file; None loads the packaged default fleet."""
    file = packaged_data(DEFAULT_FLEET_RESOURCE) if path is None else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{file}: cannot read fleet config: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None
    return parse_fleet(data, source=str(file))


def load_rtt_matrix(latency: LatencyConfig) -> dict[str, dict[str, float]]:
    """The round-trip-time matrix (ms) with config overrides applied."""
    file = packaged_data(DEFAULT_RTT_RESOURCE) if latency.matrix_file is None else Path(latency.matrix_file)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"latency.matrix_file: cannot read {file}: {error}") from None
    table = raw.get("rtt_ms") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"latency.matrix_file: {file} has no 'rtt_ms' mapping of from -> to -> ms")
    matrix: dict[str, dict[str, float]] = {}
    for origin, row in table.items():
        if not isinstance(row, dict):
            raise ConfigError(f"latency.matrix_file: {file}: row {origin!r} is not a mapping")
        matrix[origin] = {}
        for target, value in row.items():
            try:
                matrix[origin][target] = valid_rtt_ms(float(value))
            except (TypeError, ValueError) as error:
                raise ConfigError(f"latency.matrix_file: {file}: {origin} -> {target}: {error}") from None
    for origin, row in latency.overrides_ms.items():
        matrix.setdefault(origin, {}).update(row)
    return matrix


def check_latency_coverage(fleet: FleetConfig, matrix: Mapping[str, Mapping[str, float]]) -> None:
    """Every pair of fleet regions needs a round-trip time; name the first missing pair."""
    for origin in fleet.region_names:
        for target in fleet.region_names:
            if origin != target and target not in matrix.get(origin, {}):
                raise ConfigError(
                    f"latency: no round-trip time from {origin!r} to {target!r}; "
                    "add it under latency.overrides_ms or use a matrix that covers it"
                )
