"""Prometheus text exposition of the gateway's view: signal ages and staleness per region, each signal source's
health, rejected values, and the gateway's own load. Pure: a control state and counters in, text out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.control_state import ControlState
from router.state import RegionSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def region_staleness(region: RegionSnapshot, at_s: int) -> dict[str, Any]:
    """How old a region's signals are at `at_s` and how far the headroom formula still trusts them."""
    ages = {name: at_s - obs.observed_at_s for name, obs in region.signals.observed().items() if obs is not None}
    components = region.assessment.components
    return {
        "stale": region.assessment.stale,
        "signal_age_s": ages,
        "oldest_signal_age_s": max(ages.values()) if ages else None,
        "min_trust": round(min((c.trust for c in components), default=1.0), 4),
        "stale_components": [c.name for c in components if c.trust < 1.0],
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        rows = list(samples)
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in rows:
            text = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")


def render_metrics(
    state: ControlState, in_flight: Mapping[str, int], served: Mapping[str, int], marked_down: Iterable[str]
) -> str:
    """The exposition text for one gateway replica (its own counters plus the control state it routes on)."""
    out = _Exposition()
    snap = state.snapshot
    out.family(
        "gridshift_control_state_version", "gauge", "Version of the control state in use.", [({}, state.version)]
    )
    out.family(
        "gridshift_region_headroom",
        "gauge",
        "Grid headroom of the region, 0..1 (docs/headroom.md).",
        [({"region": r.config.name}, r.assessment.headroom) for r in snap.regions],
    )
    out.family(
        "gridshift_region_stress_level",
        "gauge",
        "Stress level of the region, 0 normal .. 3 emergency.",
        [({"region": r.config.name}, r.assessment.stress_level) for r in snap.regions],
    )
    staleness = {r.config.name: region_staleness(r, snap.at_s) for r in snap.regions}
    out.family(
        "gridshift_region_signal_age_seconds",
        "gauge",
        "Age of each signal the region's headroom uses, on the control clock, s.",
        [
            ({"region": name, "signal": signal}, age)
            for name, entry in staleness.items()
            for signal, age in entry["signal_age_s"].items()
        ],
    )
    out.family(
        "gridshift_region_signals_stale",
        "gauge",
        "1 while some headroom term of the region is decaying for age, else 0.",
        [({"region": name}, float(entry["stale"])) for name, entry in staleness.items()],
    )
    sources = state.signals.sources if state.signals is not None else ()
    out.family(
        "gridshift_signal_source_up",
        "gauge",
        "1 if the source's last poll gave usable values (up or degraded), else 0.",
        [({"source": h.name, "provider": h.provider}, float(h.up)) for h in sources],
    )
    out.family(
        "gridshift_signal_source_degraded",
        "gauge",
        "1 if the source's last poll gave values but some calls failed or some values were rejected, else 0.",
        [({"source": h.name}, float(h.state == "degraded")) for h in sources],
    )
    out.family(
        "gridshift_signal_source_consecutive_failures",
        "gauge",
        "Polls in a row that gave no usable value.",
        [({"source": h.name}, h.consecutive_failures) for h in sources],
    )
    if state.signals is not None:
        at_s = state.signals.at_s
        out.family(
            "gridshift_signal_source_last_success_age_seconds",
            "gauge",
            "Time since the source last gave usable values, s.",
            [({"source": h.name}, at_s - h.last_success_s) for h in sources if h.last_success_s is not None],
        )
    out.family(
        "gridshift_signal_source_polls_total",
        "counter",
        "Polls of the source since the control actor started.",
        [({"source": h.name}, h.polls) for h in sources],
    )
    out.family(
        "gridshift_signal_values_rejected_total",
        "counter",
        "Values a source gave that were not used, by reason (not_finite, stale, unit, ...).",
        [({"source": h.name, "reason": reason}, count) for h in sources for reason, count in h.rejected],
    )
    down = set(marked_down)
    out.family(
        "gridshift_gateway_in_flight",
        "gauge",
        "Requests this gateway replica has in flight to the region.",
        [({"region": name}, count) for name, count in sorted(in_flight.items())],
    )
    out.family(
        "gridshift_gateway_served_total",
        "counter",
        "Requests this gateway replica had served by the region.",
        [({"region": name}, count) for name, count in sorted(served.items())],
    )
    out.family(
        "gridshift_gateway_region_marked_down",
        "gauge",
        "1 while this gateway replica treats the region as down.",
        [({"region": name}, float(name in down)) for name in sorted(in_flight)],
    )
    return "\n".join(out.lines) + "\n"
