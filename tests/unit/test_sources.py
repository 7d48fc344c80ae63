"""Signal-source adapters against recorded real-shape answers on a loopback server, and every fault it injects:
timeouts, 5xx, 429 with Retry-After, connection resets, garbage, NaN, stale times and wrong units.

Sleeps and clocks are injected: back-off is asserted from the waits asked for, never by waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest

from fleet.clock import FixedClock
from fleet.errors import SignalSourceError
from fleet.retry import backoff_delay_s
from fleet.sources import EiaSourceConfig, ElectricityMapsSourceConfig, GenericHttpSourceConfig, WattTimeSourceConfig
from grid.readings import LBS_PER_MWH_TO_G_PER_KWH, SourceBatch
from grid.signal_health import status_to_dict
from grid.sources.base import SignalSource
from grid.sources.eia import EiaSource
from grid.sources.electricitymaps import ElectricityMapsSource
from grid.sources.generic import GenericHttpSource
from grid.sources.http import HttpRuntime
from grid.sources.poller import SignalPoller
from grid.sources.store import SignalStore
from grid.sources.watttime import WattTimeSource
from tests.data.sources.fake_provider import (
    EIA_KEY,
    EM_TOKEN,
    FEED_TOKEN,
    SECRETS,
    WATTTIME_PASSWORD,
    WATTTIME_USER,
    FakeProvider,
)
from tests.data.sources.fake_provider import HERE as FIXTURES

T = TypeVar("T")
PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: CISO's 2022 demand peak, 51,104 MW
NOW_S = PEAK_S + 600.0


class HalfDraw(random.Random):
    """Jitter draws that are always 0.5, so the expected waits are exact."""

    def random(self) -> float:
        return 0.5


class FakeTime:
    """Monotonic and wall clocks that move only when the code under test sleeps; records every sleep."""

    def __init__(self, wall_s: float = NOW_S) -> None:
        self.mono_s = 1000.0
        self.wall = wall_s
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono_s += seconds
        self.wall += seconds

    def runtime(self) -> HttpRuntime:
        return HttpRuntime(sleep=self.sleep, monotonic_s=lambda: self.mono_s, wall_s=lambda: self.wall, rng=HalfDraw())


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTTIME_USER", WATTTIME_USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", WATTTIME_PASSWORD)
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", EM_TOKEN)
    monkeypatch.setenv("EIA_API_KEY", EIA_KEY)
    monkeypatch.setenv("FEED_TOKEN", FEED_TOKEN)


def served(body: Callable[[FakeProvider], Awaitable[T]], provider: FakeProvider | None = None) -> T:
    """Run `body` against a fake provider started on 127.0.0.1 for the duration."""

    async def main() -> T:
        fake = provider or FakeProvider()
        await fake.start()
        try:
            return await body(fake)
        finally:
            await fake.stop()

    return asyncio.run(main())


def fetched(
    build: Callable[[FakeProvider], SignalSource], now_s: float = NOW_S, provider: FakeProvider | None = None
) -> SourceBatch:
    """One fetch, at `now_s`, of the source `build` makes against a fake provider; the source is closed after."""

    async def body(fake: FakeProvider) -> SourceBatch:
        source = build(fake)
        try:
            return await source.fetch(now_s)
        finally:
            await source.close()

    return served(body, provider)


def http_policy(**overrides: Any) -> dict[str, Any]:
    # No spacing between calls unless a test asks: the waits it records are then retries only.
    return {"min_interval_s": 0.0, "timeout_s": 2.0, **overrides}


def watttime(url: str, time: FakeTime, **config: Any) -> WattTimeSource:
    http = config.pop("http", {})
    data = {"provider": "watttime", "base_url": url, "zones": {"CISO": "CAISO_NORTH"}, "http": http_policy(**http)}
    return WattTimeSource(WattTimeSourceConfig.model_validate({**data, **config}), time.runtime())


def eia(url: str, time: FakeTime, **config: Any) -> EiaSource:
    http = config.pop("http", {})
    data = {"provider": "eia", "base_url": url, "http": http_policy(**http), **config}
    return EiaSource(EiaSourceConfig.model_validate(data), ("BPAT", "CISO"), time.runtime())


def generic(time: FakeTime, **config: Any) -> GenericHttpSource:
    data = {"provider": "http", "http": http_policy(), **config}
    return GenericHttpSource(GenericHttpSourceConfig.model_validate(data), time.runtime())


def values(batch: SourceBatch) -> dict[tuple[str, str], tuple[float, int]]:
    return {(r.zone, r.column): (r.value, r.observed_at_s) for r in batch.readings}


# Adapters on the recorded answers ---------------------------------------------------------------------


def test_watttime_logs_in_then_reads_the_current_moer_in_g_per_kwh() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        return watttime(fake.url, time, include_signal_index=True)

    fake = FakeProvider()
    batch = fetched(build, provider=fake)
    recorded = json.loads((FIXTURES / "watttime_forecast_caiso_north_2022-09-07.json").read_text())
    assert recorded["meta"]["units"] == "lbs_co2_per_mwh"
    # Now is 01:10Z: the forecast point for the current 5-minute period is the third.
    current = recorded["data"][2]
    assert current["point_time"] == "2022-09-07T01:10:00+00:00"
    carbon, at_s = values(batch)[("CISO", "carbon_g_per_kwh")]
    assert carbon == pytest.approx(current["value"] * LBS_PER_MWH_TO_G_PER_KWH)
    assert carbon == pytest.approx(319.35, abs=0.05)  # CISO's fuel-mix intensity at the peak, back in g/kWh
    assert at_s == PEAK_S + 600
    assert values(batch)[("CISO", "moer_percentile")][0] == pytest.approx(65.1)
    assert fake.logins == 1
    data_calls = [s for s in fake.seen if s.path == "/v3/forecast"]
    assert data_calls[0].headers["Authorization"].startswith("Bearer token-1")
    assert ("region", "CAISO_NORTH") in data_calls[0].query
    (forecast,) = batch.forecasts
    assert len(forecast.times_s) == 72
    assert forecast.times_s[0] == PEAK_S


def test_watttime_historical_endpoint_reads_the_latest_point_at_or_before_now() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        return watttime(fake.url, time, moer_endpoint="historical")

    fake = FakeProvider()
    batch = fetched(build, provider=fake)
    assert values(batch)[("CISO", "carbon_g_per_kwh")][1] == PEAK_S
    (call,) = [s for s in fake.seen if s.path == "/v3/historical"]
    assert dict(call.query)["start"] == "2022-09-07T00:10:00Z"
    assert batch.forecasts == ()


def test_watttime_renews_an_expired_token_once_on_401() -> None:
    time = FakeTime()

    async def body(fake: FakeProvider) -> tuple[SourceBatch, SourceBatch]:
        source = watttime(fake.url, time, http={"cache_ttl_s": 0})
        try:
            first = await source.fetch(NOW_S)
            fake.valid_tokens.clear()  # the provider revokes every token
            return first, await source.fetch(NOW_S)
        finally:
            await source.close()

    fake = FakeProvider()
    first, second = served(body, fake)
    assert values(first) == values(second)
    assert fake.logins == 2
    assert fake.count("/v3/forecast") == 3  # ok, 401, ok after the new login


def test_electricity_maps_latest_and_forecast_with_the_auth_token_header() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        config = ElectricityMapsSourceConfig.model_validate(
            {
                "provider": "electricitymaps",
                "base_url": fake.url,
                "zones": {"CISO": "US-CAL-CISO"},
                "include_forecast": True,
                "http": http_policy(),
            }
        )
        return ElectricityMapsSource(config, time.runtime())

    fake = FakeProvider()
    batch = fetched(build, provider=fake)
    assert values(batch) == {("CISO", "carbon_g_per_kwh"): (319.0, PEAK_S)}
    assert all(s.headers.get("auth-token") == EM_TOKEN for s in fake.seen)
    (forecast,) = batch.forecasts
    assert len(forecast.values) == 24
    assert forecast.times_s[0] == PEAK_S + 3600


def test_eia_reads_demand_and_net_generation_of_every_zone_in_one_request() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        return eia(fake.url, time, series=["D", "NG"])

    fake = FakeProvider()
    batch = fetched(build, provider=fake)
    assert values(batch) == {
        ("CISO", "demand_mw"): (51104.0, PEAK_S),
        ("CISO", "net_generation_mw"): (42749.0, PEAK_S),
        ("BPAT", "demand_mw"): (7705.0, PEAK_S),
        ("BPAT", "net_generation_mw"): (14218.0, PEAK_S),
    }
    (call,) = fake.seen
    assert ("facets[respondent][]", "BPAT") in call.query
    assert ("facets[respondent][]", "CISO") in call.query
    assert ("facets[type][]", "NG") in call.query
    assert dict(call.query)["start"] == "2022-09-05T01"  # 48 h back, EIA's hour format


def test_eia_day_ahead_forecast_is_the_value_for_the_current_hour_not_a_later_one() -> None:
    time = FakeTime(wall_s=1_532_482_200.0)
    now_s = 1_532_480_400.0 + 1800  # 2018-07-25T01:30Z

    def build(fake: FakeProvider) -> SignalSource:
        return EiaSource(
            EiaSourceConfig.model_validate(
                {"provider": "eia", "base_url": fake.url, "zones": {"CISO": "CISO"}, "http": http_policy()}
            ),
            runtime=time.runtime(),
        )

    batch = fetched(build, now_s, FakeProvider(eia_fixture="eia_region_data_ciso_forecast_2018-07-25.json"))
    hour = 1_532_480_400
    assert values(batch)[("CISO", "demand_mw")] == (45957.0, hour)
    assert values(batch)[("CISO", "demand_forecast_mw")] == (48179.0, hour)
    # NG was asked for but the answer has none: said, not invented.
    assert {(r.column, r.reason) for r in batch.rejections} == {("net_generation_mw", "missing")}


def test_generic_csv_feed_maps_a_price_column_with_a_secret_header() -> None:
    time = FakeTime()
    now_s = datetime(2023, 8, 17, 9, 20, tzinfo=UTC).timestamp()

    def build(fake: FakeProvider) -> SignalSource:
        return generic(
            time,
            name="caiso-prices",
            url=f"{fake.url}/feed/prices.csv",
            format="csv",
            time_field="Datetime (UTC)",
            columns={"price_usd_per_mwh": {"field": "Price (USD/MWh)"}},
            zones={"CISO": "NP15"},
            headers_env={"X-Feed-Token": "FEED_TOKEN"},
        )

    batch = fetched(build, now_s)
    price, at_s = values(batch)[("CISO", "price_usd_per_mwh")]
    assert price == pytest.approx(1045.45225)  # CAISO NP15's 2023 peak hour
    assert at_s == datetime(2023, 8, 17, 9, tzinfo=UTC).timestamp()


def test_generic_json_mapping_reads_the_eia_shape_by_zone_field_filter_and_scale() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        return generic(
            time,
            name="eia-as-json",
            url=f"{fake.url}/v2/electricity/rto/region-data/data/",
            records_path="response.data",
            time_field="period",
            naive_time_is_utc=True,
            zone_field="respondent",
            filters={"type": "D"},
            columns={
                "demand_mw": {"field": "value", "scale": 1.0},
                "net_generation_mw": {"field": "value", "scale": 0.001},
            },
            zones={"CISO": "CISO"},
            params_env={"api_key": "EIA_API_KEY"},
        )

    batch = fetched(build)
    assert values(batch)[("CISO", "demand_mw")] == (51104.0, PEAK_S)
    assert values(batch)[("CISO", "net_generation_mw")][0] == pytest.approx(51.104)  # the scale applies per column


def test_generic_json_feed_with_a_zone_placeholder_reads_the_newest_point_at_or_before_now() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        return generic(
            time,
            name="carbon-feed",
            url=f"{fake.url}/feed/{{zone}}/carbon.json",
            records_path="forecast",
            time_field="datetime",
            columns={"carbon_g_per_kwh": {"field": "carbonIntensity"}},
            zones={"CISO": "US-CAL-CISO"},
        )

    batch = fetched(build, PEAK_S + 3 * 3600 + 60)
    assert values(batch)[("CISO", "carbon_g_per_kwh")][1] == PEAK_S + 3 * 3600


# Faults -----------------------------------------------------------------------------------------------


def fetch_eia(fake: FakeProvider, time: FakeTime, fetches: int = 1, **config: Any) -> Awaitable[list[Any]]:
    async def run() -> list[Any]:
        source = eia(fake.url, time, **config)
        outcomes: list[Any] = []
        try:
            for _ in range(fetches):
                try:
                    outcomes.append(await source.fetch(NOW_S))
                except SignalSourceError as error:
                    outcomes.append(error)
        finally:
            await source.close()
        return outcomes

    return run()


def test_5xx_is_retried_with_jittered_exponential_backoff_then_succeeds() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "status:500", "status:503")
    (batch,) = served(lambda f: fetch_eia(f, time, http={"backoff_initial_s": 2.0, "cache_ttl_s": 0}), fake)
    assert isinstance(batch, SourceBatch)
    assert batch.readings
    assert fake.count("/v2/electricity/rto/region-data/data/") == 3
    # Draws of 0.5 with jitter 0.5: each wait is 3/4 of 2 s, then of 4 s.
    assert time.sleeps == [1.5, 3.0]


def test_5xx_on_every_try_fails_with_the_status_after_max_attempts() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "status:502", "status:502", "status:502", "status:502")
    (error,) = served(lambda f: fetch_eia(f, time, http={"max_attempts": 3}), fake)
    assert isinstance(error, SignalSourceError)
    assert (error.kind, error.source) == ("http_status", "eia")
    assert "HTTP 502" in str(error)
    assert fake.count("/v2/electricity/rto/region-data/data/") == 3


def test_backoff_is_capped_at_backoff_max() -> None:
    policy = EiaSourceConfig.model_validate(
        {"provider": "eia", "http": {"backoff_initial_s": 1, "backoff_max_s": 5, "jitter_fraction": 0}}
    ).http
    assert [backoff_delay_s(i, policy, 0.9) for i in range(5)] == [1, 2, 4, 5, 5]


def test_429_waits_exactly_what_retry_after_says() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "429:7")
    (batch,) = served(lambda f: fetch_eia(f, time), fake)
    assert isinstance(batch, SourceBatch)
    assert batch.readings
    assert time.sleeps == [7.0]


def test_429_with_an_http_date_is_honoured_too() -> None:
    time = FakeTime()
    fake = FakeProvider()
    when = datetime.fromtimestamp(time.wall + 12, tz=UTC)
    fake.fail("/v2/electricity/rto/region-data/data/", "429:DATE:" + format_datetime(when, usegmt=True))
    (batch,) = served(lambda f: fetch_eia(f, time), fake)
    assert isinstance(batch, SourceBatch)
    assert time.sleeps == [pytest.approx(12.0, abs=1.0)]


def test_a_long_retry_after_fails_the_poll_and_blocks_calls_until_it_has_passed() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "429:3600")
    first, second = served(lambda f: fetch_eia(f, time, fetches=2), fake)
    assert isinstance(first, SignalSourceError)
    assert first.kind == "rate_limited"
    assert isinstance(second, SignalSourceError)
    assert second.kind == "rate_limited"
    assert fake.count("/v2/electricity/rto/region-data/data/") == 1  # the second poll sent nothing
    assert time.sleeps == []


def test_minimum_interval_spaces_calls_to_one_provider() -> None:
    time = FakeTime()
    fake = FakeProvider()
    outcomes = served(lambda f: fetch_eia(f, time, fetches=2, http={"min_interval_s": 4.0, "cache_ttl_s": 0}), fake)
    assert all(isinstance(o, SourceBatch) for o in outcomes)
    assert time.sleeps == [4.0]


def test_cache_answers_repeated_polls_within_its_ttl_without_a_call() -> None:
    time = FakeTime()
    fake = FakeProvider()
    outcomes = served(lambda f: fetch_eia(f, time, fetches=3, http={"cache_ttl_s": 60}), fake)
    assert [values(o) for o in outcomes[1:]] == [values(outcomes[0])] * 2
    assert fake.count("/v2/electricity/rto/region-data/data/") == 1


def test_timeouts_are_retried_then_reported_as_timeout() -> None:
    time = FakeTime()
    fake = FakeProvider(hold_s=1.0)
    fake.fail("/v2/electricity/rto/region-data/data/", "timeout", "timeout")
    (error,) = served(lambda f: fetch_eia(f, time, http={"timeout_s": 0.2, "max_attempts": 2}), fake)
    assert isinstance(error, SignalSourceError)
    assert error.kind == "timeout"
    assert time.sleeps == [0.75]  # one back-off between the two tries


def test_connection_reset_is_retried_and_recovers() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "reset")
    (batch,) = served(lambda f: fetch_eia(f, time), fake)
    assert isinstance(batch, SourceBatch)
    assert batch.readings
    assert fake.count("/v2/electricity/rto/region-data/data/") == 2


def test_garbage_body_is_bad_payload_and_not_retried() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.fail("/v2/electricity/rto/region-data/data/", "garbage")
    (error,) = served(lambda f: fetch_eia(f, time), fake)
    assert isinstance(error, SignalSourceError)
    assert error.kind == "bad_payload"
    assert "text/html" in str(error)
    assert "Bad Gateway" not in str(error)
    assert fake.count("/v2/electricity/rto/region-data/data/") == 1


def _set_rows(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    for row in body["response"]["data"]:
        if row["respondent"] == "CISO" and row["type"] == "D" and row["period"] == "2022-09-07T01":
            row.update(changes)
    return body


def test_wrong_units_are_rejected_and_the_previous_good_row_is_not_used_instead_silently() -> None:
    time = FakeTime()
    fake = FakeProvider()
    fake.transform["/v2/electricity/rto/region-data/data/"] = lambda b: _set_rows(b, **{"value-units": "kilowatthours"})
    (batch,) = served(lambda f: fetch_eia(f, time, series=["D"]), fake)
    assert isinstance(batch, SourceBatch)
    # The newest usable hour (00Z) is read, and the refused newer one is said and counted.
    assert values(batch)[("CISO", "demand_mw")] == (50609.0, PEAK_S - 3600)
    assert [(r.zone, r.column, r.reason) for r in batch.rejections] == [("CISO", "demand_mw", "unit")]


def test_watttime_in_an_unknown_unit_gives_no_value_and_the_poll_counts_as_down() -> None:
    time = FakeTime()
    fake = FakeProvider()

    def kilograms(body: dict[str, Any]) -> dict[str, Any]:
        body["meta"]["units"] = "kg_co2_per_mwh"
        return body

    fake.transform["/v3/forecast"] = kilograms

    async def body(f: FakeProvider) -> SignalStore:
        store = SignalStore()
        poller = SignalPoller([watttime(f.url, time)], store, FixedClock(NOW_S), 60.0)
        await poller.poll_once()
        await poller.close()
        return store

    health = served(body, fake).status(NOW_S).sources[0]
    assert health.state == "down"
    assert health.consecutive_failures == 1
    assert dict(health.rejected) == {"unit": 1}
    assert health.last_error is not None
    assert health.last_error.startswith("no_data")


def test_nan_and_stale_values_are_rejected_by_the_store_and_the_last_good_value_stays() -> None:
    time = FakeTime()
    fake = FakeProvider()

    async def body(f: FakeProvider) -> SignalStore:
        store = SignalStore()
        poller = SignalPoller([eia(f.url, time, series=["D"], http={"cache_ttl_s": 0})], store, FixedClock(NOW_S), 60.0)
        await poller.poll_once()  # good
        f.transform["/v2/electricity/rto/region-data/data/"] = lambda b: _set_rows(b, value=float("nan"))
        await poller.poll_once()  # the 01Z CISO value is NaN: its 00Z row is older than the held 01Z value
        f.transform["/v2/electricity/rto/region-data/data/"] = lambda b: {
            **b,
            "response": {**b["response"], "data": [{**r, "period": "2022-08-01T00"} for r in b["response"]["data"]]},
        }
        await poller.poll_once()  # every row re-stamped to an old hour
        await poller.close()
        return store

    store = served(body, fake)
    held = store.latest("CISO", "demand_mw", int(NOW_S))
    assert held is not None
    assert (held.value, held.observed_at_s) == (51104.0, PEAK_S)
    (health,) = store.status(NOW_S).sources
    # CISO's NaN once; then both zones' re-stamped rows, five weeks old on arrival.
    assert dict(health.rejected) == {"not_finite": 1, "stale": 2}
    assert health.polls == 3
    assert health.state == "down"  # the last poll gave nothing usable


def test_one_failing_region_does_not_lose_the_others() -> None:
    time = FakeTime()

    def build(fake: FakeProvider) -> SignalSource:
        config = WattTimeSourceConfig.model_validate(
            {
                "provider": "watttime",
                "base_url": fake.url,
                "zones": {"CISO": "CAISO_NORTH", "BPAT": "BPA"},  # the fake knows only CAISO_NORTH: 400 for BPA
                "http": http_policy(),
            }
        )
        return WattTimeSource(config, time.runtime())

    batch = fetched(build)
    assert set(values(batch)) == {("CISO", "carbon_g_per_kwh")}
    assert len(batch.failures) == 1
    assert "HTTP 400" in batch.failures[0]


# Credentials ------------------------------------------------------------------------------------------


def test_credentials_never_reach_errors_health_logs_or_reprs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    time = FakeTime()
    fake = FakeProvider(hold_s=1.0)
    for path in ("/v2/electricity/rto/region-data/data/", "/v3/carbon-intensity/latest"):
        fake.fail(path, "status:500", "status:500", "timeout", "timeout", "garbage", "reset", "reset", "reset")
    fake.fail("/v3/forecast", "garbage")

    async def body(f: FakeProvider) -> tuple[SignalStore, list[str]]:
        sources: list[SignalSource] = [
            eia(f.url, time, http={"max_attempts": 2, "timeout_s": 0.2, "cache_ttl_s": 0}),
            ElectricityMapsSource(
                ElectricityMapsSourceConfig.model_validate(
                    {
                        "provider": "electricitymaps",
                        "base_url": f.url,
                        "zones": {"CISO": "US-CAL-CISO"},
                        "http": http_policy(max_attempts=2, timeout_s=0.2, cache_ttl_s=0),
                    }
                ),
                time.runtime(),
            ),
            watttime(f.url, time),
        ]
        store = SignalStore()
        poller = SignalPoller(sources, store, FixedClock(NOW_S), 60.0)
        messages: list[str] = []
        for _ in range(4):
            await poller.poll_once()
        # A wrong password: the login is refused (and says so without the password).
        monkeypatch.setenv("WATTTIME_PASSWORD", WATTTIME_PASSWORD + "-wrong")
        wrong = watttime(f.url, time)
        try:
            await wrong.fetch(NOW_S)
        except SignalSourceError as error:
            messages += [str(error), repr(error)]
        await wrong.close()
        await poller.close()
        messages += [repr(s) for s in sources] + [repr(s.config) for s in sources if hasattr(s, "config")]
        return store, messages

    store, messages = served(body, fake)
    status = store.status(NOW_S)
    exposed = "\n".join([*messages, json.dumps(status_to_dict(status)), repr(status), caplog.text])
    assert any(h.last_error for h in status.sources)  # the faults did happen
    assert "auth" in "\n".join(messages)
    for secret in (*SECRETS, "token-1-unlikely-secret-5"):
        assert secret not in exposed


def test_an_inline_secret_is_masked_in_the_config_repr_and_dump() -> None:
    config = EiaSourceConfig.model_validate({"provider": "eia", "api_key": EIA_KEY})
    assert EIA_KEY not in repr(config)
    assert EIA_KEY not in json.dumps(config.model_dump(mode="json"))


def test_a_missing_credential_names_the_variable_and_fails_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EIA_API_KEY")
    time = FakeTime()
    (error,) = served(lambda f: fetch_eia(f, time))
    assert isinstance(error, SignalSourceError)
    assert error.kind == "credentials"
    assert "EIA_API_KEY" in str(error)
