"""Trace replay behind the SignalSource interface: the latest value of every column a trace holds for each zone,
as known at the moment asked (the control clock's trace time). The default, reproducible source."""

from __future__ import annotations

from grid.readings import Reading, Rejection, SourceBatch
from grid.trace import Trace


class TraceReplaySource:
    """Reads a loaded Trace for the (zone, column) pairs asked for. A column the trace does not carry is no signal,
    not a fault, so it is skipped; a zone without a value for a column it carries is a `missing` rejection."""

    def __init__(self, trace: Trace, wanted: tuple[tuple[str, str], ...], name: str = "trace") -> None:
        self.trace = trace
        self.wanted = tuple(pair for pair in wanted if pair[1] in trace.columns)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return "trace"

    @property
    def required(self) -> bool:
        return True

    async def fetch(self, now_s: float) -> SourceBatch:
        at_s = int(now_s)
        readings: list[Reading] = []
        rejections: list[Rejection] = []
        for zone, column in self.wanted:
            observation = self.trace.latest(zone, column, at_s)
            if observation is None:
                detail = f"{self.trace.source} has no {column} for {zone} at or before now"
                rejections.append(Rejection(zone, column, "missing", detail))
                continue
            readings.append(Reading(zone, column, observation.value, observation.observed_at_s))
        return SourceBatch(tuple(readings), tuple(rejections))

    async def close(self) -> None:
        return None
