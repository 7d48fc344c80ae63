"""The OpenADR 3 VEN against the local spec-following VTN over loopback HTTP, with a fake fleet (no Ray).

A full event cycle per spec version: registration, events by polling and by webhook, modify and delete,
reports whose figures are the fleet's, faults from the VTN, token expiry, and the status the CLI shows.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleet.clock import FixedClock
from fleet.events import DREvent, GridSignal
from fleet.openadr import OpenADRConfig, WebhookConfig
from openadr.fleet import PowerReading
from openadr.schema import load_schemas
from openadr.timing import format_instant
from openadr.ven import VEN
from openadr.vtn import LocalVTN
from openadr.vtn_http import Fault
from serve_apps.cli import main as cli_main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSIONS = ("3.0.1", "3.1.0")
T0_S = 1_719_856_800.0  # 2024-07-01T18:00:00Z
CAPACITY = {"us-east-1": 3000.0, "us-west-2": 1000.0}
RESOURCES = {"us-east-1": "dc-virginia", "us-west-2": "dc-oregon"}
VEN_ID, VEN_SECRET, BL_ID = "ven-client", "ven-secret-0123456789", "bl"


class FakeFleet:
    """A FleetPort that remembers what it was told and answers fixed power figures per region."""

    def __init__(self) -> None:
        self.events: dict[str, DREvent] = {}
        self.signals: dict[str, GridSignal] = {}
        self.calls = 0
        self.power_kw = {
            region: PowerReading(
                region, 0.0, 0.6 * kw, 0.8 * kw, {"shift": 0.1 * kw, "defer": 0.05 * kw, "battery": 50.0}
            )
            for region, kw in CAPACITY.items()
        }
        self.changed = asyncio.Event()

    async def power(self, region: str) -> PowerReading:
        return self.power_kw[region]

    def _touch(self) -> None:
        self.calls += 1
        self.changed.set()

    async def post_event(self, event: DREvent) -> None:
        self.events[event.event_id] = event
        self._touch()

    async def clear_event(self, event_id: str) -> None:
        self.events.pop(event_id, None)
        self._touch()

    async def set_signal(self, signal: GridSignal) -> None:
        self.signals[signal.signal_id] = signal
        self._touch()

    async def clear_signal(self, signal_id: str) -> None:
        self.signals.pop(signal_id, None)
        self._touch()

    def levels(self) -> dict[str, int]:
        return {e.region: e.level for e in self.events.values() if e.level is not None}

    def limits_kw(self) -> dict[str, float]:
        return {e.region: e.power_limit_kw for e in self.events.values() if e.power_limit_kw is not None}


def ven_config(vtn: LocalVTN, *, webhook: bool = True, **extra: Any) -> OpenADRConfig:
    values: dict[str, Any] = {
        "vtn_url": vtn.url,
        "spec_version": vtn.version,
        "ven_name": "gridshift-ven",
        "resources": RESOURCES,
        "poll_interval_s": 3600.0,
        "request_timeout_s": 2.0,
        "retry_backoff_s": 0.01,
        "webhook": WebhookConfig() if webhook else None,
        "usage_bucket_s": 900,
    }
    values.update(extra)
    return OpenADRConfig(**values)


Scenario = Callable[[LocalVTN, FixedClock, Path], Awaitable[None]]


def run(version: str, scenario: Scenario, tmp_path: Path, **vtn_args: Any) -> None:
    async def main() -> None:
        clock = FixedClock(T0_S)
        vtn = LocalVTN(version, clock, {VEN_ID: (VEN_SECRET, "ven"), BL_ID: ("bl-secret-0123456789", "bl")}, **vtn_args)  # type: ignore[arg-type]
        async with vtn:
            await asyncio.wait_for(scenario(vtn, clock, tmp_path), timeout=60)

    asyncio.run(main())


def make_ven(vtn: LocalVTN, clock: FixedClock, tmp_path: Path, fleet: FakeFleet, **config: Any) -> VEN:
    return VEN(
        ven_config(vtn, **config),
        CAPACITY,
        fleet,
        clock,
        credentials=(VEN_ID, VEN_SECRET),
        status_file=tmp_path / "status.json",
    )


async def program(vtn: LocalVTN) -> str:
    created = await vtn.create("program", {"programName": "dr-program"})
    return str(created["id"])


def simple_event(
    program_id: str, level: int, *, start_s: float, duration: str = "PT1H", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "programID": program_id,
        "eventName": "heat wave",
        "intervalPeriod": {"start": format_instant(start_s), "duration": duration},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [level]}]}],
    }
    body.update(extra)
    return body


def assert_every_body_valid(vtn: LocalVTN) -> None:
    """Everything the VEN sent passed the VTN's validation, and passes the spec's request schemas again here."""
    assert vtn.refused == []
    schemas = load_schemas(vtn.version)
    kinds = {"/reports": "report", "/subscriptions": "subscription", "/vens": "ven", "/resources": "resource"}
    for received in vtn.received:
        kind = next((k for prefix, k in kinds.items() if received.path.startswith(prefix)), None)
        if received.path.endswith("/resources") or "/resources/" in received.path:
            kind = "resource"
        assert kind is not None, received.path
        assert schemas.problems(schemas.request_schema(kind), received.body) == [], received


@pytest.mark.parametrize("version", VERSIONS)
def test_registration_finds_or_creates_the_ven_and_one_resource_per_region(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        for _ in range(2):  # the second VEN finds what the first registered
            async with make_ven(vtn, clock, folder, FakeFleet(), webhook=False) as ven:
                assert await ven.register()
                assert ven.status().registered
        (ven_object,) = vtn.objects["ven"].values()
        assert ven_object["venName"] == "gridshift-ven"
        resources = sorted((r["resourceName"], r["venID"]) for r in vtn.objects["resource"].values())
        assert resources == [("dc-oregon", ven_object["id"]), ("dc-virginia", ven_object["id"])]
        assert_every_body_valid(vtn)

    run(version, scenario, tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_event_reaches_the_fleet_within_one_poll_period(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        ven = make_ven(vtn, clock, folder, fleet, webhook=False, poll_interval_s=0.2)
        stop = asyncio.Event()
        async with ven:
            runner = asyncio.create_task(ven.run(stop))
            while ven.polls < 1:
                await asyncio.sleep(0.02)
            await vtn.create("event", simple_event(program_id, 3, start_s=T0_S))
            polls_before = ven.polls
            await asyncio.wait_for(fleet.changed.wait(), timeout=10)
            # Within one poll period: the poll after the event was posted (at most one in flight) carried it.
            assert ven.polls - polls_before <= 2
            stop.set()
            await runner
        assert fleet.levels() == {"us-east-1": 3, "us-west-2": 3}

    run(version, scenario, tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_webhook_delivers_at_once_and_modify_and_delete_follow(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        async with make_ven(vtn, clock, folder, fleet) as ven:  # polls once an hour: only the webhook is fast
            assert await ven.register()
            assert await ven.poll_once()
            await ven.subscribe()
            assert ven.subscriptions
            created = await vtn.create("event", simple_event(program_id, 2, start_s=T0_S, targets=None))
            # The VTN answers the create after notifying: the fleet has reacted already.
            assert fleet.levels() == {"us-east-1": 2, "us-west-2": 2}
            assert all(d.status == 200 for d in vtn.deliveries)
            calls = fleet.calls
            assert await ven.poll_once()  # re-reading the same event changes nothing
            assert fleet.calls == calls
            targeted = simple_event(program_id, 3, start_s=T0_S, targets=_targets(version, "dc-oregon"))
            clock.advance(1)
            await vtn.update("event", created["id"], targeted)
            assert fleet.levels() == {"us-west-2": 3}
            await vtn.delete("event", created["id"])
            assert fleet.events == {}
            assert ven.notifications == 3
        # Stopping the VEN removes its subscriptions from the VTN.
        assert vtn.objects["subscription"] == {}
        assert_every_body_valid(vtn)

    run(version, scenario, tmp_path)


def _targets(version: str, resource: str) -> list[Any]:
    return [resource] if version == "3.1.0" else [{"type": "RESOURCE_NAME", "values": [resource]}]


@pytest.mark.parametrize("version", VERSIONS)
def test_limits_and_signals_reach_the_fleet_with_units(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        body = {
            "programID": program_id,
            "intervalPeriod": {"start": format_instant(T0_S), "duration": "PT2H"},
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"},
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "PRICE", "units": "KWH", "currency": "USD"},
            ],
            "targets": _targets(version, "dc-virginia"),
            "intervals": [
                {
                    "id": 0,
                    "payloads": [
                        {"type": "IMPORT_CAPACITY_LIMIT", "values": [1.5]},
                        {"type": "PRICE", "values": [1.2]},
                        {"type": "GHG", "values": [500.0]},
                        {"type": "ALERT_GRID_EMERGENCY", "values": ["EEA3 declared"]},
                    ],
                }
            ],
        }
        await vtn.create("event", body)
        async with make_ven(vtn, clock, folder, fleet, webhook=False) as ven:
            assert await ven.poll_once()
        assert fleet.limits_kw() == {"us-east-1": pytest.approx(1500.0)}
        assert {(s.kind, s.unit, s.level) for s in fleet.signals.values()} == {
            ("price", "USD/MWh", 3),
            ("ghg", "gCO2/kWh", 1),
        }
        assert fleet.levels() == {"us-east-1": 3}

    run(version, scenario, tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_reports_carry_the_fleets_figures_before_during_and_after(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        start = T0_S + 600  # ten minutes ahead: the capacity report goes out before the event
        await vtn.create(
            "event",
            simple_event(program_id, 3, start_s=start, duration="PT15M", targets=_targets(version, "dc-oregon"))
            | {
                "intervals": [
                    {"id": 0, "payloads": [{"type": "SIMPLE", "values": [3]}]},
                    {"id": 1, "payloads": [{"type": "SIMPLE", "values": [2]}]},
                ]
            },
        )
        async with make_ven(vtn, clock, folder, fleet, webhook=False) as ven:
            assert await ven.poll_once()
            await ven.sample_once()
            await ven.report_once()
            (capacity,) = [r.body for r in vtn.received if r.path == "/reports"]
            figures = _figures(capacity)["dc-oregon"][0]
            oregon = fleet.power_kw["us-west-2"]
            assert figures["LOAD_SHED_DELTA_AVAILABLE"] == pytest.approx(oregon.flexible_total_kw)
            assert figures["GRIDSHIFT_BATTERY_AVAILABLE"] == 50.0
            assert (figures["DEMAND"], figures["BASELINE"]) == (oregon.grid_kw, oregon.baseline_kw)
            # During the event: a sample every five minutes; the first interval closes at start + 15 min.
            for minutes in (5, 5, 5, 5):
                clock.advance(minutes * 60)
                await ven.sample_once()
                await ven.report_once()
            fleet.power_kw["us-west-2"] = PowerReading("us-west-2", 0, 400.0, 800.0, {})
            for _ in range(3):
                clock.advance(300)
                await ven.sample_once()
                await ven.report_once()
            clock.advance(300)
            await ven.report_once()
            assert ven.events == {}  # all said: the event is forgotten
        usage = [r for r in vtn.received if "usage" in str(r.body.get("reportName"))]
        assert [r.method for r in usage] == ["POST", "PUT"]
        intervals = _figures(usage[-1].body)["dc-oregon"]
        assert intervals == [
            {"DEMAND": oregon.grid_kw, "BASELINE": oregon.baseline_kw},
            {"DEMAND": 400.0, "BASELINE": 800.0},
        ]
        stored = next(r for r in vtn.objects["report"].values() if "usage" in r["reportName"])
        assert stored["resources"] == usage[-1].body["resources"]
        assert_every_body_valid(vtn)

    run(version, scenario, tmp_path)


def _figures(report: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    return {
        resource["resourceName"]: [{p["type"]: p["values"][0] for p in i["payloads"]} for i in resource["intervals"]]
        for resource in report["resources"]
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_a_bad_vtn_never_crashes_the_ven_and_the_last_good_state_stays(version: str, tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        await vtn.create("event", simple_event(program_id, 3, start_s=T0_S))
        async with make_ven(vtn, clock, folder, fleet, webhook=False, max_retries=0, request_timeout_s=0.3) as ven:
            assert await ven.poll_once()
            good = dict(fleet.events)
            faults: tuple[Fault, ...] = ("http500", "garbage", "nan", "not_a_list", "invalid_object", "slow")
            for fault in faults:
                vtn.inject("/events", fault)
                assert not await ven.poll_once(), fault
                assert fleet.events == good, fault
            assert await ven.poll_once()
            assert fleet.events == good
            errors = ven.status().errors
        assert errors["http"] >= 1
        assert errors["invalid_json"] >= 2
        assert errors["invalid_object"] >= 2
        assert errors["transport"] >= 1  # the slow answer timed out

    run(version, scenario, tmp_path, slow_s=2.0)


def test_expired_token_is_refreshed_and_a_wrong_webhook_token_is_refused(tmp_path: Path) -> None:
    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        await program(vtn)
        async with make_ven(vtn, clock, folder, fleet) as ven:
            assert await ven.poll_once()
            clock.advance(120)  # past the VTN's token lifetime
            assert await ven.poll_once()
            assert ven.client.counters["tokens"] == 2
            url = ven.webhook_url
            assert url is not None
            notification = {"objectType": "EVENT", "operation": "CREATE", "object": {}}
            async with aiohttp.ClientSession() as session:
                async with session.post(url, json=notification, headers={"Authorization": "Bearer wrong"}) as answer:
                    assert answer.status == 403
                async with session.post(
                    url, data="{", headers={"Authorization": f"Bearer {ven._webhook_token}"}
                ) as answer:
                    assert answer.status == 400
            assert ven.status().errors == {"webhook_invalid": 1, "webhook_unauthorized": 1}
            assert fleet.events == {}

    run("3.1.0", scenario, tmp_path, token_ttl_s=60)


def test_status_file_and_url_feed_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results: dict[str, int] = {}

    async def scenario(vtn: LocalVTN, clock: FixedClock, folder: Path) -> None:
        fleet = FakeFleet()
        program_id = await program(vtn)
        await vtn.create("event", simple_event(program_id, 3, start_s=T0_S, targets=["dc-oregon"]))
        async with make_ven(vtn, clock, folder, fleet) as ven:
            assert await ven.register()
            assert await ven.poll_once()
            await ven.sample_once()
            await ven.report_once()
            url = (ven.webhook_url or "").split("/openadr3")[0]
            results["url"] = await asyncio.to_thread(cli_main, ["openadr", "status", "--url", url, "--json"])
            assert json.dumps(ven.client.counters)  # nothing secret to hide in counters, but check the status:
            text = (folder / "status.json").read_text()
            assert VEN_SECRET not in text
            assert ven._webhook_token not in text

    run("3.1.0", scenario, tmp_path)
    from_url = json.loads(capsys.readouterr().out)
    assert results["url"] == 0
    assert from_url["registered"] is True
    assert [e["regions"] for e in from_url["events"]] == [["us-west-2"]]
    assert from_url["reports"][0]["kind"] == "capacity"
    assert cli_main(["openadr", "status", "--status-file", str(tmp_path / "status.json")]) == 0
    human = capsys.readouterr().out
    assert "registered" in human
    assert "DR level 3 on us-west-2" in human
    assert not math.isnan(from_url["reports"][0]["figures"]["dc-oregon"]["DEMAND"])
