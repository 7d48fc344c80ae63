"""The real inference arrival shape: requests per minute over one hour of an Azure LLM inference service.

The shared data holds one hour of real arrivals (Patel et al., Splitwise, ISCA 2024; CC-BY-4.0). No diurnal
inference trace ships with it, so the simulator holds each hour's mean inference load constant and uses this hour
for what happens inside an hour: real-time capacity must cover the busiest minute, not the mean.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np

from grid.trace import FloatArray

PACKAGED_SHAPE: Final = "azure_llm_arrivals_per_minute.csv"


@dataclass(frozen=True)
class ArrivalShape:
    """Requests per minute over whole minutes of the source hour."""

    per_minute: FloatArray
    source: str

    @property
    def peak_factor(self) -> float:
        """Busiest minute over the mean minute."""
        return float(self.per_minute.max() / self.per_minute.mean())

    @property
    def requests(self) -> int:
        return int(self.per_minute.sum())


def shape_from_azure_trace(path: Path) -> ArrivalShape:
    """Count the raw trace's requests per minute (`TIMESTAMP,ContextTokens,GeneratedTokens`), whole minutes only:
    the first and last minutes of the hour are cut by the recording window."""
    with gzip.open(path, "rt", encoding="utf-8") as text:
        stamps = [line.split(",", 1)[0] for line in text.read().splitlines()[1:] if line]
    minutes = np.array([int(s[11:13]) * 60 + int(s[14:16]) for s in stamps], dtype=np.int64)
    counts = np.bincount(minutes - minutes.min()).astype(np.float64)
    return ArrivalShape(counts[1:-1], str(path))


def packaged_arrival_shape() -> ArrivalShape:
    text = resources.files("simulate").joinpath("data", PACKAGED_SHAPE).read_text(encoding="utf-8")
    rows = [line.split(",") for line in text.splitlines() if line and not line.startswith(("#", "minute"))]
    return ArrivalShape(np.array([float(row[1]) for row in rows]), f"simulate/data/{PACKAGED_SHAPE}")
