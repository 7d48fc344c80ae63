"""Stress outlook and policy replay: what the policy reads from forecasts, and the policy run over a trace window.

Pure given a loaded trace. The policy actor asks `stressed_seconds_ahead` each decision (the battery sizes its
discharge to last the forecast peak); `replay_policy` runs the same decisions hour by hour over a replay window,
for `gridshift policy replay`, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from fleet.events import DREvent
from fleet.serving import Knobs, Precision
from grid.context import FleetContext
from grid.trace import SignalReader
from policies.calibration import Calibration
from policies.ladder import RegionDecision, RegionInputs, decide_region
from policies.load import RegionLoad
from policies.plan import HOUR_S
from policies.plan_forecast import iter_assessments
from router.state import snapshot


def stressed_seconds_ahead(
    context: FleetContext,
    region: str,
    now_s: float,
    level: int,
    horizon_s: float,
    *,
    peak_reader: SignalReader | None = None,
) -> float:
    """Seconds from now that the forecast (made now, from the trace alone) keeps the region at stress >= `level`,
    counting consecutive hours from the current one; 0 when the next hour is forecast calmer. Slots after the
    first calm one are never assessed. `peak_reader`: as policies.plan_forecast.iter_assessments."""
    config = context.fleet.region(region)
    hour = int(now_s) // HOUR_S * HOUR_S
    slots = np.arange(hour, hour + max(int(horizon_s), HOUR_S), HOUR_S, dtype=np.int64)
    try:
        outlook = iter_assessments(
            context.trace, config, int(now_s), slots, context.fleet.headroom, peak_reader=peak_reader
        )
    except ValueError:
        return 0.0  # no forecast inputs at all: size as for one hour
    stressed = 0.0
    for slot, assessment in zip(slots, outlook, strict=True):
        if assessment is None or assessment.stress_level < level:
            break
        stressed += min(float(slot) + HOUR_S - now_s, HOUR_S)
    return max(stressed, 0.0)


@dataclass(frozen=True)
class ReplayedHour:
    at_s: int
    stress_level: int
    headroom: float
    decision: RegionDecision


def load_under(offered: RegionLoad, knobs: Knobs, calibration: Calibration) -> RegionLoad:
    """The load that `offered` work (measured at fp32) becomes under `knobs`: each class's CPU time scaled by the
    calibrated cost of the precision it would run at. What a replay feeds the power model."""
    batch = max(offered.mean_batch_requests, 1.0)
    by_class: dict[str, float] = {}
    by_precision: dict[str, float] = {}
    for name, cpu in offered.busy_by_class.items():
        precision = knobs.precision_for(name)
        scaled = cpu * calibration.cost_ratio(precision, Precision.FP32, batch)
        by_class[name] = scaled
        by_precision[precision.value] = by_precision.get(precision.value, 0.0) + scaled
    return replace(
        offered, busy_by_class=by_class, busy_by_precision=by_precision, busy_cpu_s_per_s=sum(by_class.values())
    )


def replay_policy(
    context: FleetContext,
    region: str,
    times_s: Iterable[int],
    calibration: Calibration,
    *,
    offered: RegionLoad | None = None,
    events: Iterable[DREvent] = (),
    power_limits_kw: Mapping[int, float] | None = None,
) -> list[ReplayedHour]:
    """The policy's decisions for one region at each time, each from the previous one, on the trace's grid.

    `offered` is the region's work as measured at fp32, held constant; each decision sees it as it runs under the
    knobs then in force. `power_limits_kw` maps a time to the import limit in force from then on."""
    fleet = context.fleet
    config = fleet.region(region)
    event_list = list(events)
    previous: RegionDecision | None = None
    limit: float | None = None
    hours: list[ReplayedHour] = []
    for at_s in times_s:
        if power_limits_kw and at_s in power_limits_kw:
            limit = power_limits_kw[at_s]
        snap = snapshot(fleet, context.trace, at_s, events=event_list)
        assessment = next(r.assessment for r in snap.regions if r.config.name == region)
        inputs = RegionInputs(
            region=region,
            now_s=at_s,
            stress_level=assessment.stress_level,
            headroom=assessment.headroom,
            load=load_under(
                offered or RegionLoad(), fleet.serving.knobs if previous is None else previous.knobs, calibration
            ),
            power_limit_kw=limit,
            stressed_s_ahead=stressed_seconds_ahead(
                context, region, at_s, fleet.policy.battery.discharge_at_stress, fleet.policy.battery.horizon_s
            ),
        )
        previous = decide_region(inputs, previous, config, fleet, calibration)
        hours.append(ReplayedHour(at_s, assessment.stress_level, assessment.headroom, previous))
    return hours
