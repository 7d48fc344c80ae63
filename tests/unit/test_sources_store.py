"""The live signal store: what it accepts and rejects, last-good-value retention, health, the same snapshot as the
trace for the same values, headroom decaying toward the conservative value as a dead feed ages, routing that
never crashes, and the poller (in the foreground and in its background thread)."""

from __future__ import annotations

import asyncio
import copy
import math
import threading
import time
from typing import Any

import pytest
import yaml

from fleet.clock import FixedClock, WallClock, clock_for_source
from fleet.errors import SignalSourceError
from fleet.loaders import packaged_data, parse_fleet
from fleet.routing import RoutingMode
from fleet.sources import LiveSourceConfig
from grid.context import FleetContext, load_context
from grid.readings import Reading, Rejection, SourceBatch, check_reading
from grid.signal_health import required_down, status_to_dict
from grid.sources.poller import BackgroundPoller, SignalPoller, fleet_zones, start_background_polling
from grid.sources.store import SignalStore, load_live_context
from grid.trace import Observation
from router.routing import RouteRequest, choose_region
from router.state import snapshot

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z
HOUR_S = 3600
TOLERANT = RouteRequest("us-west-1", "tolerant", RoutingMode.SHIFT, 150.0)


def live_fleet_data(**live: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(packaged_data("fleet_default.yaml").read_text())
    data = copy.deepcopy(data)
    data["signal_source"] = {"kind": "live", "sources": [{"provider": "eia", "required": True}], **live}
    return data


@pytest.fixture(scope="module")
def trace_context() -> FleetContext:
    data: dict[str, Any] = yaml.safe_load(packaged_data("fleet_default.yaml").read_text())
    return load_context(parse_fleet(data))


@pytest.fixture
def live_context(trace_context: FleetContext) -> FleetContext:
    # A fresh, empty store per test over the trace loaded once (the default fleet's history is that same trace).
    fleet = parse_fleet(live_fleet_data())
    assert isinstance(fleet.signal_source, LiveSourceConfig)
    store = SignalStore.for_config(fleet.signal_source, trace_context.trace)
    return FleetContext(fleet, trace_context.trace, trace_context.rtt_ms, store)


def reading(zone: str, column: str, value: float, at_s: int) -> Reading:
    return Reading(zone, column, value, at_s)


def trace_values(context: FleetContext, zones: tuple[str, ...]) -> SourceBatch:
    """Demand and carbon of every zone at the peak, from the packaged trace."""
    batch = []
    for zone in zones:
        for column in ("demand_mw", "carbon_g_per_kwh"):
            observation = context.trace.latest(zone, column, PEAK_S)
            if observation is not None:
                batch.append(reading(zone, column, observation.value, observation.observed_at_s))
    return SourceBatch(tuple(batch))


# Acceptance ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "age_s", "reason"),
    [
        ("demand_mw", float("nan"), 0, "not_finite"),
        ("carbon_g_per_kwh", float("inf"), 0, "not_finite"),
        ("demand_mw", -5.0, 0, "negative"),
        ("dr_level", 5.0, 0, "out_of_range"),
        ("demand_mw", 51_104_000.0, 0, "implausible"),  # kW read as MW
        ("carbon_g_per_kwh", 5000.0, 0, "implausible"),
        ("demand_mw", 51_104.0, -3600, "future"),
        ("demand_mw", 51_104.0, 30 * 86_400, "stale"),
        ("price_usd_per_mwh", -20.0, 0, "accept"),  # negative prices are real
        ("demand_mw", 51_104.0, -60, "accept"),  # within the clock-skew allowance
        ("no_such_column", 1.0, 0, "unknown_column"),
    ],
)
def test_a_value_is_accepted_only_if_it_can_be_real(column: str, value: float, age_s: int, reason: str) -> None:
    verdict, detail = check_reading(reading("CISO", column, value, PEAK_S - age_s), PEAK_S, None, 7 * 86_400, 300)
    assert verdict == reason
    assert "CISO" in detail


def test_older_values_are_rejected_repeats_ignored_and_revisions_taken() -> None:
    store = SignalStore()
    assert store.offer("eia", SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),)), PEAK_S) == 1
    older = SourceBatch((reading("CISO", "demand_mw", 50_609.0, PEAK_S - HOUR_S),))
    repeat = SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),))
    revised = SourceBatch((reading("CISO", "demand_mw", 51_200.0, PEAK_S),))
    assert store.offer("eia", older, PEAK_S) == 0
    assert store.offer("eia", repeat, PEAK_S) == 0
    assert store.offer("eia", revised, PEAK_S) == 1
    held = store.latest("CISO", "demand_mw", PEAK_S)
    assert held is not None
    assert (held.value, held.observed_at_s) == (51_200.0, PEAK_S)
    (health,) = store.status(PEAK_S).sources
    assert dict(health.rejected) == {"older_than_held": 1}  # a repeat is not a fault


def test_the_newest_value_wins_when_two_sources_feed_one_column() -> None:
    store = SignalStore()
    store.offer("eia", SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),)), PEAK_S + 60)
    store.offer("feed", SourceBatch((reading("CISO", "demand_mw", 50_609.0, PEAK_S - HOUR_S),)), PEAK_S + 60)
    held = store.status(PEAK_S).held
    assert [(h.source, h.value) for h in held] == [("eia", 51_104.0)]


def test_failures_keep_the_last_good_value_and_count_in_health() -> None:
    store = SignalStore()
    store.register("eia", "eia", required=True)
    assert store.status(PEAK_S).sources[0].state == "unknown"
    store.offer("eia", SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),)), PEAK_S)
    for minutes in (5, 10, 15):
        store.fail(
            "eia", SignalSourceError("eia", "timeout", "GET api.eia.gov/v2/...: no answer"), PEAK_S + 60 * minutes
        )
    held = store.latest("CISO", "demand_mw", PEAK_S + 900)
    assert held is not None
    assert held.value == 51_104.0
    (health,) = store.status(PEAK_S + 900).sources
    assert (health.state, health.consecutive_failures, health.polls) == ("down", 3, 4)
    assert health.last_error is not None
    assert health.last_error.startswith("timeout")
    assert health.last_success_s == PEAK_S
    assert required_down([health]) == ["eia"]
    body = status_to_dict(store.status(PEAK_S + 900))
    assert body["sources"][0]["values"][0]["age_s"] == 900
    assert body["sources"][0]["values"][0]["unit"] == "MW"
    # One good poll brings it back up.
    store.offer("eia", SourceBatch((reading("CISO", "demand_mw", 50_378.0, PEAK_S + HOUR_S),)), PEAK_S + HOUR_S)
    (health,) = store.status(PEAK_S + HOUR_S).sources
    assert (health.state, health.consecutive_failures) == ("up", 0)


def test_a_poll_with_values_and_rejections_is_degraded_and_with_no_value_down() -> None:
    store = SignalStore()
    mixed = SourceBatch(
        (reading("CISO", "demand_mw", 51_104.0, PEAK_S),),
        (Rejection("BPAT", "demand_mw", "missing", "no BPAT D row"),),
    )
    store.offer("eia", mixed, PEAK_S)
    assert store.status(PEAK_S).sources[0].state == "degraded"
    store.offer("eia", SourceBatch(rejections=(Rejection("CISO", "demand_mw", "unit", "kilowatthours"),)), PEAK_S)
    (health,) = store.status(PEAK_S).sources
    assert health.state == "down"
    assert dict(health.rejected) == {"missing": 1, "unit": 1}


def test_store_revision_grows_with_every_poll_outcome() -> None:
    store = SignalStore()
    before = store.revision
    store.fail("eia", SignalSourceError("eia", "connection", "reset"), PEAK_S)
    store.offer("eia", SourceBatch(), PEAK_S)
    assert store.revision == before + 2


# Reads as a trace -------------------------------------------------------------------------------------


def test_the_store_reads_like_the_trace_for_the_same_values(
    trace_context: FleetContext, live_context: FleetContext
) -> None:
    assert isinstance(live_context.signals, SignalStore)
    fleet = live_context.fleet
    live_context.signals.offer("replay", trace_values(trace_context, fleet_zones(fleet)), PEAK_S)
    from_trace = snapshot(trace_context.fleet, trace_context.trace, PEAK_S)
    from_store = snapshot(fleet, live_context.reader, PEAK_S)
    assert [r.assessment for r in from_store.regions] == [r.assessment for r in from_trace.regions]
    west_1 = next(r for r in from_store.regions if r.config.name == "us-west-1")
    assert west_1.signals.reference_peak_mw == pytest.approx(42_712, abs=1)  # the history trace's trailing peak
    assert west_1.assessment.stress_level == 3  # CAISO's heat-wave emergency, from live values


def test_trailing_quantile_joins_the_history_trace_and_later_live_values(live_context: FleetContext) -> None:
    store = live_context.signals
    assert isinstance(store, SignalStore)
    history = live_context.trace
    end_s = int(history.zones["BPAT"].times_s[-1])
    lookback = 365 * 86_400
    trace_only = history.trailing_quantile("BPAT", "demand_mw", end_s, lookback, 1.0)
    assert store.trailing_quantile("BPAT", "demand_mw", end_s + 30 * 86_400, lookback, 1.0) == trace_only
    assert trace_only is not None
    # A live value above every historical one, after the trace ends, becomes the new maximum.
    higher = trace_only + 1000.0
    store.offer("eia", SourceBatch((reading("BPAT", "demand_mw", higher, end_s + 3600),)), end_s + 3600)
    assert store.trailing_quantile("BPAT", "demand_mw", end_s + 7200, lookback, 1.0) == higher
    assert store.trailing_quantile("NOWHERE", "demand_mw", end_s, lookback, 0.5) is None


# Faults degrade, never crash ---------------------------------------------------------------------------


def test_a_dead_feed_decays_headroom_toward_the_conservative_value_and_routing_goes_on(
    live_context: FleetContext,
) -> None:
    store = live_context.signals
    assert isinstance(store, SignalStore)
    fleet = live_context.fleet
    config = fleet.headroom
    # The real heat-wave values (from the packaged trace), as a live feed would have given them.
    store.offer("eia", trace_values(live_context, fleet_zones(fleet)), float(PEAK_S))
    # Then the feed dies: every later poll fails, and time runs on.
    distances: dict[str, list[float]] = {"us-west-1": [], "us-west-2": []}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for hours in (0, 2, 3, 4, 6, 9, 14, 24):
        at_s = PEAK_S + hours * HOUR_S
        store.fail("eia", SignalSourceError("eia", "timeout", "no answer"), float(at_s))
        snap = snapshot(fleet, live_context.reader, at_s)
        last = {r.config.name: r.assessment.headroom for r in snap.regions}
        first = first or last
        for name, series in distances.items():
            series.append(abs(last[name] - config.stale_headroom))
        decision = choose_region(TOLERANT, snap.states, live_context.rtt_ms, fleet.routing)
        assert decision.region in fleet.region_names
        assert all(r.assessment.stale for r in snap.regions) == (hours * HOUR_S > config.fresh_for_s)
    # At the peak California had little room (0.170) and Oregon plenty (0.642), as the trace says ...
    assert first["us-west-1"] == pytest.approx(0.170, abs=0.001)
    assert first["us-west-2"] == pytest.approx(0.642, abs=0.001)
    # ... and as the dead feed ages both move steadily to the conservative value: stale means "don't know".
    for series in distances.values():
        assert series == sorted(series, reverse=True)
        assert series[-1] < 0.01
    assert all(abs(h - config.stale_headroom) < 0.01 for h in last.values())


def test_an_empty_store_gives_the_conservative_headroom_everywhere_and_routing_still_answers(
    live_context: FleetContext,
) -> None:
    fleet = live_context.fleet
    snap = snapshot(fleet, live_context.reader, PEAK_S)
    assert {r.assessment.headroom for r in snap.regions} == {fleet.headroom.stale_headroom}
    decision = choose_region(TOLERANT, snap.states, live_context.rtt_ms, fleet.routing)
    assert decision.region in fleet.region_names


# The poller -------------------------------------------------------------------------------------------


class ScriptedSource:
    """A source whose fetches follow a script: a batch, a SignalSourceError, or any other exception."""

    def __init__(self, name: str, script: list[SourceBatch | Exception], required: bool = True) -> None:
        self._name = name
        self.script = script
        self._required = required
        self.fetches = 0
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return "scripted"

    @property
    def required(self) -> bool:
        return self._required

    async def fetch(self, now_s: float) -> SourceBatch:  # noqa: ARG002 - the script decides
        outcome = self.script[min(self.fetches, len(self.script) - 1)]
        self.fetches += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def close(self) -> None:
        self.closed = True


def test_the_poller_survives_every_kind_of_source_failure() -> None:
    good = ScriptedSource("good", [SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),))])
    failing = ScriptedSource("failing", [SignalSourceError("failing", "http_status", "GET x: HTTP 503")])
    buggy = ScriptedSource("buggy", [KeyError("an adapter bug")], required=False)
    store = SignalStore()
    poller = SignalPoller([good, failing, buggy], store, FixedClock(PEAK_S), 60.0)

    async def twice() -> None:
        await poller.poll_once()
        await poller.poll_once()
        await poller.close()

    asyncio.run(twice())
    health = {h.name: h for h in store.status(PEAK_S).sources}
    assert health["good"].state == "up"
    assert (health["failing"].state, health["failing"].consecutive_failures) == ("down", 2)
    assert health["buggy"].last_error == "internal: KeyError"
    assert required_down(health.values()) == ["failing"]
    assert all(source.closed for source in (good, failing, buggy))


def test_background_poller_polls_in_its_thread_and_stops_cleanly() -> None:
    source = ScriptedSource("good", [SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),))])
    store = SignalStore()
    poller = BackgroundPoller(SignalPoller([source], store, FixedClock(PEAK_S), poll_interval_s=3600.0)).start()
    deadline = time.monotonic() + 5.0
    while store.status(PEAK_S).sources[0].polls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop(timeout_s=5.0)
    assert not poller.alive
    assert source.fetches == 1  # one poll, then it waited for the period and was stopped
    assert source.closed
    assert store.latest("CISO", "demand_mw", PEAK_S) is not None
    assert threading.current_thread() is threading.main_thread()


def test_live_fleet_config_uses_the_wall_clock_and_starts_polling_only_when_live(trace_context: FleetContext) -> None:
    live_context, _ = load_live_context(parse_fleet(live_fleet_data()))
    assert isinstance(live_context.signals, SignalStore)
    assert live_context.trace.source.endswith("grid_2022.csv.gz")  # no history_trace: the packaged one
    live = live_context.fleet.signal_source
    assert isinstance(live, LiveSourceConfig)
    assert live.speedup == 1.0
    assert isinstance(clock_for_source(live), WallClock)
    assert start_background_polling(trace_context.fleet, None) is None
    built: list[int] = []

    def build(config: LiveSourceConfig, zones: tuple[str, ...], runtime: object) -> list[Any]:  # noqa: ARG001
        built.append(len(zones))
        return [ScriptedSource("eia", [SignalSourceError("eia", "credentials", "set EIA_API_KEY")])]

    poller = start_background_polling(live_context.fleet, live_context.signals, FixedClock(PEAK_S), build=build)
    assert poller is not None
    poller.stop(timeout_s=5.0)
    assert built == [len(fleet_zones(live_context.fleet))]
    assert isinstance(live_context.signals, SignalStore)
    assert live_context.signals.status(PEAK_S).sources[0].last_error == "credentials: set EIA_API_KEY"


def test_live_config_errors_name_the_field() -> None:
    from fleet.errors import ConfigError

    data = live_fleet_data(poll_interval_s=0)
    with pytest.raises(ConfigError, match=r"signal_source\.poll_interval_s"):
        parse_fleet(data)
    data = live_fleet_data()
    data["signal_source"]["sources"].append({"provider": "eia"})
    with pytest.raises(ConfigError, match="duplicate source name"):
        parse_fleet(data)
    data = live_fleet_data()
    data["signal_source"]["sources"] = [
        {
            "provider": "http",
            "name": "x",
            "url": "http://127.0.0.1:1/f",
            "time_field": "t",
            "columns": {"demand": {"field": "v"}},
            "zones": {"CISO": "C"},
        }
    ]
    with pytest.raises(ConfigError, match=r"signal_source\.sources\.0\.http\.columns.*unknown column"):
        parse_fleet(data)
    assert math.isfinite(LiveSourceConfig.model_fields["poll_interval_s"].default)


def test_a_poll_landing_while_the_state_is_built_shows_in_the_next_state(
    live_context: FleetContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI once caught a state whose source health said "polled" while its snapshot held none of the poll's values:
    # the store changed between the snapshot's reads and the health (or the revision the state was cached under).
    from fleet.clock import FixedClock
    from policies.control import ControlPlane

    store = live_context.signals
    assert isinstance(store, SignalStore)
    plane = ControlPlane(live_context, FixedClock(PEAK_S), FixedClock(0.0))
    original = store.latest
    landed: list[bool] = []

    def latest_racing_a_poll(zone: str, column: str, at_s: int) -> Observation | None:
        answer = original(zone, column, at_s)
        if not landed:  # the poller's thread offers its answer just after the snapshot's first read
            landed.append(True)
            store.offer("eia", SourceBatch((reading("CISO", "demand_mw", 51_104.0, PEAK_S),)), PEAK_S)
        return answer

    monkeypatch.setattr(store, "latest", latest_racing_a_poll)
    first = plane.state()
    assert first is not None
    assert first.signals is not None
    assert all(h.polls == 0 for h in first.signals.sources)  # health never claims a poll the values lack
    newer = plane.state(first.version)
    assert newer is not None  # the poll is a change: a new version, built with its values
    west_1 = next(r for r in newer.snapshot.regions if r.config.name == "us-west-1")
    assert west_1.signals.demand_mw is not None
    assert west_1.signals.demand_mw.value == 51_104.0
