"""Electricity Maps API v3: each zone's carbon intensity, as carbon_g_per_kwh.

Auth: the `auth-token` header. Data: /v3/carbon-intensity/latest?zone=US-CAL-CISO answers
{zone, carbonIntensity, datetime, updatedAt, emissionFactorType, isEstimated, ...}; /v3/carbon-intensity/forecast
answers {zone, forecast: [{carbonIntensity, datetime}], updatedAt}. Units: carbonIntensity is gCO2eq/kWh, the
column's unit, so no conversion (it is an average intensity, lifecycle by default, direct on request).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fleet.errors import SignalSourceError
from fleet.sources import ElectricityMapsSourceConfig
from grid.readings import ForecastSeries, Reading, Rejection, SourceBatch
from grid.sources.base import HttpSource
from grid.sources.http import HttpRuntime, env_secret
from grid.sources.parse import PayloadError, load_json, parse_number, parse_utc_time, require_list, require_mapping

CARBON = "carbon_g_per_kwh"


def _zone_matches(payload: dict[str, Any], code: str, zones: tuple[str, ...]) -> list[Rejection]:
    answered = payload.get("zone")
    if answered is not None and answered != code:
        detail = f"asked for zone {code!r}, the answer is for {str(answered)[:40]!r}"
        return [Rejection(zone, CARBON, "region_mismatch", detail) for zone in zones]
    return []


def parse_latest(body: Any, code: str, zones: tuple[str, ...]) -> SourceBatch:
    """carbon_g_per_kwh readings from a /v3/carbon-intensity/latest answer."""
    payload = require_mapping(body, "body")
    mismatch = _zone_matches(payload, code, zones)
    if mismatch:
        return SourceBatch(rejections=tuple(mismatch))
    try:
        at_s = parse_utc_time(payload.get("datetime"))
        value = parse_number(payload.get("carbonIntensity"))
    except PayloadError as error:
        reason = "missing" if payload.get("carbonIntensity", 0) is None else "bad_value"
        if str(error).startswith("time"):
            reason = "bad_time"
        return SourceBatch(rejections=tuple(Rejection(zone, CARBON, reason, str(error)) for zone in zones))
    return SourceBatch(readings=tuple(Reading(zone, CARBON, value, at_s) for zone in zones))


def parse_forecast(body: Any, code: str, zones: tuple[str, ...]) -> SourceBatch:
    """A carbon_g_per_kwh forecast from a /v3/carbon-intensity/forecast answer (points that do not parse are
    left out of it)."""
    payload = require_mapping(body, "body")
    mismatch = _zone_matches(payload, code, zones)
    if mismatch:
        return SourceBatch(rejections=tuple(mismatch))
    points: list[tuple[int, float]] = []
    for item in require_list(payload.get("forecast"), "forecast"):
        try:
            record = require_mapping(item, "forecast[]")
            points.append((parse_utc_time(record.get("datetime")), parse_number(record.get("carbonIntensity"))))
        except PayloadError:
            continue
    if not points:
        return SourceBatch()
    points.sort()
    updated = payload.get("updatedAt")
    try:
        issued = parse_utc_time(updated) if updated is not None else points[0][0]
    except PayloadError:
        issued = points[0][0]
    times, values = tuple(t for t, _ in points), tuple(v for _, v in points)
    return SourceBatch(forecasts=tuple(ForecastSeries(zone, CARBON, issued, times, values) for zone in zones))


class ElectricityMapsSource(HttpSource):
    """The Electricity Maps v3 adapter."""

    def __init__(self, config: ElectricityMapsSourceConfig, runtime: HttpRuntime | None = None) -> None:
        super().__init__(config.name, "electricitymaps", config.required, config.zones, config.http, runtime)
        self.config = config

    async def _get(self, path: str, code: str) -> Any:
        c = self.config
        token = env_secret(c.token_env, c.token.get_secret_value() if c.token else None, self.name, "auth token")
        self.http.redact.add(token)
        params = [("zone", code)]
        if c.emission_factor_type != "lifecycle":  # lifecycle is the API's default; say nothing then
            params.append(("emissionFactorType", c.emission_factor_type))
        answer = await self.http.get(f"{c.base_url}{path}", params, headers={"auth-token": token})
        try:
            return load_json(answer.body, answer.content_type)
        except PayloadError as error:
            raise self.bad_payload(error, f"{path} {code}") from None

    async def fetch(self, now_s: float) -> SourceBatch:  # noqa: ARG002 - the latest value is the provider's now
        async def one(code: str, zones: tuple[str, ...]) -> SourceBatch:
            path = "/v3/carbon-intensity/latest"
            try:
                latest = parse_latest(await self._get(path, code), code, zones)
            except PayloadError as error:
                raise self.bad_payload(error, f"{path} {code}") from None
            if not self.config.include_forecast:
                return latest
            # The forecast is an extra: its failure is reported, and the latest value read above is kept.
            path = "/v3/carbon-intensity/forecast"
            try:
                forecast = parse_forecast(await self._get(path, code), code, zones)
            except PayloadError as error:
                return replace(latest, failures=(str(self.bad_payload(error, f"{path} {code}")),))
            except SignalSourceError as error:
                return replace(latest, failures=(str(error),))
            return replace(latest, rejections=latest.rejections + forecast.rejections, forecasts=forecast.forecasts)

        return await self.per_code(one)
