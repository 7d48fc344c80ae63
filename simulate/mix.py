"""Workload mix and levers: what share of a region's work each class is, and which levers a simulation may pull."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from fleet.errors import GridshiftError

CLASSES: Final = ("realtime", "tolerant", "batch", "training")
LEVERS: Final = ("geo", "time", "magnitude", "battery")
DEFAULT_MIX: Final = "realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"


class SimulationInputError(GridshiftError):
    """Bad simulation input: a mix that does not sum to 1, an unknown lever, a window outside the trace."""


@dataclass(frozen=True)
class WorkloadMix:
    """Share of each region's offered work (CPU time at fp32) per workload class; the shares sum to 1."""

    realtime: float
    tolerant: float
    batch: float
    training: float

    def __post_init__(self) -> None:
        shares = self.as_dict()
        bad = {name: share for name, share in shares.items() if not 0.0 <= share <= 1.0 or math.isnan(share)}
        if bad:
            raise SimulationInputError(f"mix: every share must be in [0, 1], got {bad}")
        total = sum(shares.values())
        if abs(total - 1.0) > 1e-6:
            raise SimulationInputError(f"mix: shares must sum to 1, got {total:g} ({self.label})")

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in CLASSES}

    @property
    def label(self) -> str:
        return ",".join(f"{name}={share:g}" for name, share in self.as_dict().items())

    @property
    def flexible_share(self) -> float:
        """Work that some lever can move: everything but real-time."""
        return 1.0 - self.realtime


def parse_mix(text: str) -> WorkloadMix:
    """`realtime=0.3,tolerant=0.2,batch=0.3,training=0.2`; a class left out has share 0."""
    shares: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in shares:
            raise SimulationInputError(f"mix: {part!r} is not CLASS=SHARE with CLASS one of {list(CLASSES)}")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise SimulationInputError(f"mix: {part!r}: {value!r} is not a number") from None
    return mix_from(shares)


def mix_from(shares: Mapping[str, float]) -> WorkloadMix:
    return WorkloadMix(**{name: float(shares.get(name, 0.0)) for name in CLASSES})


def parse_levers(text: str) -> frozenset[str]:
    levers = frozenset(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(levers - set(LEVERS))
    if unknown:
        raise SimulationInputError(f"levers: unknown {unknown}; choose from {list(LEVERS)}")
    return levers
