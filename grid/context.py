"""A loaded fleet: its config, trace and latency matrix, and (live fleets) the signals the poller keeps current.

Pure: loading reads files only. A live fleet's store is attached by its edge (grid.sources.store.load_live_context,
used by the control actor and the CLI); without one, a live fleet's context reads its history trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleet.config import FleetConfig
from fleet.loaders import check_latency_coverage, load_rtt_matrix
from fleet.sources import LiveSourceConfig
from grid.signal_health import SignalsStatus
from grid.trace import SignalReader, Trace, load_trace, packaged_trace


class LiveSignals(SignalReader, Protocol):
    """Current signals of a live fleet (the signal store), read as a trace is, with each source's health."""

    @property
    def revision(self) -> int:
        """Grows with every change to the values or the health."""
        ...

    def status(self, at_s: float) -> SignalsStatus:
        """Every source's health and every held value at `at_s`."""
        ...


LiveSignalsFactory = Callable[[LiveSourceConfig, Trace], LiveSignals]
"""Makes an empty live store for a live fleet, given its section and its history trace."""


@dataclass(frozen=True)
class FleetContext:
    """A loaded fleet with its trace and latency matrix: everything a decision needs besides the moment."""

    fleet: FleetConfig
    trace: Trace
    rtt_ms: dict[str, dict[str, float]]
    # Live fleets only: the store the signal poller fills. `trace` is then the history trace (reference peaks,
    # the batch planner's forecasts) and the snapshot reads current signals from here.
    signals: LiveSignals | None = None

    @property
    def reader(self) -> SignalReader:
        """Where current signals are read: the live store when there is one, else the trace."""
        return self.trace if self.signals is None else self.signals


def load_context(
    fleet: FleetConfig, trace_path: str | Path | None = None, live_signals: LiveSignalsFactory | None = None
) -> FleetContext:
    """Load the trace (the fleet's, unless overridden) and latency matrix, and check they cover the fleet.
    A live fleet also gets an empty store from `live_signals`, which its poller fills (grid.sources.poller)."""
    source = fleet.signal_source
    configured = source.history_trace if isinstance(source, LiveSourceConfig) else source.path
    path = trace_path or configured or packaged_trace()
    rtt = load_rtt_matrix(fleet.latency)
    check_latency_coverage(fleet, rtt)
    trace = load_trace(path)
    store = live_signals(source, trace) if isinstance(source, LiveSourceConfig) and live_signals else None
    return FleetContext(fleet, trace, rtt, store)
