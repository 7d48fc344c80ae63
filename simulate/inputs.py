"""What a simulation starts from: the fleet's context with a precomputed reader and the calibration, the window
checked against the trace, and OpenADR-style events read from a JSON file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from fleet.config import FleetConfig
from fleet.events import DREvent
from fleet.times import iso
from grid.context import FleetContext, load_context
from policies.calibration import Calibration, load_calibration
from simulate.fast import PrecomputedReader
from simulate.mix import SimulationInputError

_EVENTS = TypeAdapter(list[DREvent])


@dataclass(frozen=True)
class Inputs:
    context: FleetContext
    reader: PrecomputedReader
    calibration: Calibration


def load_inputs(fleet: FleetConfig, trace_path: str | Path | None = None) -> Inputs:
    # A live fleet is simulated on its history trace: a what-if replays the past, it never polls.
    context = load_context(fleet, trace_path)
    return Inputs(context, PrecomputedReader(context.trace), load_calibration(fleet.policy.calibration_file))


def check_window(context: FleetContext, start_s: int, end_s: int) -> None:
    """Every region's demand zone must cover the window; a window outside the trace is an error, not zeros."""
    if end_s <= start_s:
        raise SimulationInputError(f"window: --to ({iso(end_s)}) must be after --from ({iso(start_s)})")
    trace = context.trace
    for region in context.fleet.regions:
        zone = region.zone_for("demand_mw")
        series = trace.zones.get(zone)
        if series is None:
            raise SimulationInputError(
                f"region {region.name!r}: zone {zone!r} is not in the trace {trace.source} ({sorted(trace.zones)})"
            )
        first, last = int(series.times_s[0]), int(series.times_s[-1])
        if start_s < first or end_s - 3600 > last:
            raise SimulationInputError(
                f"window {iso(start_s)} .. {iso(end_s)} is outside zone {zone!r} of {trace.source} "
                f"({iso(first)} .. {iso(last)})"
            )


def load_events(path: str | Path) -> tuple[DREvent, ...]:
    """A JSON list of DR events (`region`, `level` and/or `power_limit_kw`, `start`, `end`), as the admin API takes."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        events = _EVENTS.validate_python(data)
    except OSError as error:
        raise SimulationInputError(f"--events: cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise SimulationInputError(f"--events: {path} is not JSON: {error}") from None
    except ValidationError as error:
        raise SimulationInputError(
            f"--events: {path}: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}"
        ) from None
    return tuple(events)
