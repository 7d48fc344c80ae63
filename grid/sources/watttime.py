"""WattTime API v3: the marginal operating emissions rate (MOER) of each region, as carbon_g_per_kwh.

Auth: GET /login with HTTP basic auth returns a bearer token (valid 30 minutes); it is renewed after
`token_lifetime_s` and whenever a call answers 401. Data: /v3/forecast (its first point is WattTime's real-time
value), /v3/historical, and optionally /v3/signal-index (a percentile, kept as `moer_percentile`).

Units: WattTime gives MOER in lbs CO2 per MWh (`meta.units: lbs_co2_per_mwh`); x lbs/MWh is 0.45359237 x
gCO2/kWh. Any other unit is rejected, never guessed. A MOER is a marginal rate (the plant that answers a change
in load), not the average intensity of the supply that the packaged traces carry: do not mix the two in one
fleet's comparison (docs/signals.md).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fleet.errors import SignalSourceError
from fleet.sources import WattTimeSourceConfig
from grid.readings import LBS_PER_MWH_TO_G_PER_KWH, ForecastSeries, Reading, Rejection, SourceBatch, latest_at_or_before
from grid.sources.base import HttpSource
from grid.sources.http import HttpRuntime, basic_auth_header, env_secret
from grid.sources.parse import PayloadError, dig, load_json, parse_number, parse_utc_time, require_list, require_mapping

MOER_UNITS: dict[str, float] = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH}
"""WattTime unit label -> factor to gCO2/kWh; a label not here is rejected."""

CARBON = "carbon_g_per_kwh"
PERCENTILE = "moer_percentile"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _points(
    body: dict[str, Any], zones: tuple[str, ...], column: str
) -> tuple[list[tuple[int, float]], list[Rejection]]:
    points: list[tuple[int, float]] = []
    rejections: list[Rejection] = []
    for item in require_list(body.get("data"), "data"):
        try:
            record = require_mapping(item, "data[]")
            points.append((parse_utc_time(record.get("point_time")), parse_number(record.get("value"))))
        except PayloadError as error:
            reason = "bad_time" if str(error).startswith("time") else "bad_value"
            rejections.extend(Rejection(zone, column, reason, str(error)) for zone in zones)
    return points, rejections


def _check_meta(
    meta: dict[str, Any], code: str, zones: tuple[str, ...], column: str, units: dict[str, float]
) -> tuple[float | None, list[Rejection]]:
    """The unit factor, or None with the rejections that say why the payload is unusable."""
    region = meta.get("region")
    if region is not None and region != code:
        detail = f"asked for region {code!r}, the answer is for {region!r}"
        return None, [Rejection(zone, column, "region_mismatch", detail) for zone in zones]
    label = meta.get("units")
    if label not in units:
        detail = f"unexpected unit {str(label)[:40]!r}; expected one of {sorted(units)}"
        return None, [Rejection(zone, column, "unit", detail) for zone in zones]
    return units[str(label)], []


def parse_moer(
    body: Any, code: str, zones: tuple[str, ...], now_s: float, endpoint: str, keep_forecast: bool
) -> SourceBatch:
    """Readings of carbon_g_per_kwh from a /v3/forecast or /v3/historical answer for WattTime region `code`."""
    payload = require_mapping(body, "body")
    meta = require_mapping(dig(payload, "meta"), "meta")
    factor, refused = _check_meta(meta, code, zones, CARBON, MOER_UNITS)
    if factor is None:
        return SourceBatch(rejections=tuple(refused))
    points, rejections = _points(payload, zones, CARBON)
    if not points:
        rejections += [Rejection(zone, CARBON, "missing", f"no data point for {code}") for zone in zones]
        return SourceBatch(rejections=tuple(rejections))
    ordered = sorted(points)
    # A forecast's first point applies to the current period (WattTime's real-time value); history's is its last.
    current = latest_at_or_before(ordered, now_s)
    if current is None and endpoint == "forecast":
        current = ordered[0]
    if current is None:
        rejections += [Rejection(zone, CARBON, "future", f"every point of {code} is after now") for zone in zones]
        return SourceBatch(rejections=tuple(rejections))
    readings = tuple(Reading(zone, CARBON, current[1] * factor, current[0]) for zone in zones)
    forecasts: tuple[ForecastSeries, ...] = ()
    if endpoint == "forecast" and keep_forecast:
        generated = meta.get("generated_at")
        try:
            issued = parse_utc_time(generated) if generated is not None else ordered[0][0]
        except PayloadError:
            issued = ordered[0][0]
        times = tuple(t for t, _ in ordered)
        values = tuple(v * factor for _, v in ordered)
        forecasts = tuple(ForecastSeries(zone, CARBON, issued, times, values) for zone in zones)
    return SourceBatch(readings, tuple(rejections), forecasts)


def parse_signal_index(body: Any, code: str, zones: tuple[str, ...], now_s: float) -> SourceBatch:
    """moer_percentile readings from a /v3/signal-index answer (units `percentile`, 0-100)."""
    payload = require_mapping(body, "body")
    meta = require_mapping(dig(payload, "meta"), "meta")
    factor, refused = _check_meta(meta, code, zones, PERCENTILE, {"percentile": 1.0})
    if factor is None:
        return SourceBatch(rejections=tuple(refused))
    points, rejections = _points(payload, zones, PERCENTILE)
    current = latest_at_or_before(points, now_s) or (min(points) if points else None)
    if current is None:
        rejections += [Rejection(zone, PERCENTILE, "missing", f"no index point for {code}") for zone in zones]
        return SourceBatch(rejections=tuple(rejections))
    return SourceBatch(tuple(Reading(zone, PERCENTILE, current[1], current[0]) for zone in zones), tuple(rejections))


class WattTimeSource(HttpSource):
    """The WattTime v3 adapter."""

    def __init__(self, config: WattTimeSourceConfig, runtime: HttpRuntime | None = None) -> None:
        super().__init__(config.name, "watttime", config.required, config.zones, config.http, runtime)
        self.config = config
        self._token: str | None = None
        self._token_at_s = 0.0

    def _credentials(self) -> tuple[str, str]:
        c = self.config
        user = env_secret(c.username_env, c.username.get_secret_value() if c.username else None, self.name, "user name")
        password = env_secret(
            c.password_env, c.password.get_secret_value() if c.password else None, self.name, "password"
        )
        self.http.redact.add_basic_auth(user, password)
        return user, password

    async def _login(self) -> str:
        user, password = self._credentials()
        login = {"Authorization": basic_auth_header(user, password)}
        answer = await self.http.get(f"{self.config.base_url}/login", headers=login, use_cache=False)
        try:
            token = require_mapping(load_json(answer.body, answer.content_type), "login answer").get("token")
        except PayloadError as error:
            raise self.bad_payload(error, "login") from None
        if not isinstance(token, str) or not token:
            raise SignalSourceError(self.name, "auth", "login answered without a token")
        self.http.redact.add(token)
        self._token, self._token_at_s = token, self.http.runtime.monotonic_s()
        return token

    async def _token_now(self) -> str:
        age = self.http.runtime.monotonic_s() - self._token_at_s
        if self._token is None or age >= self.config.token_lifetime_s:
            return await self._login()
        return self._token

    async def _call(self, path: str, params: list[tuple[str, str]]) -> Any:
        url = f"{self.config.base_url}{path}"
        token = await self._token_now()
        try:
            answer = await self.http.get(url, params, headers={"Authorization": f"Bearer {token}"})
        except SignalSourceError as error:
            if error.kind != "auth":
                raise
            # An expired or revoked token: log in once more, then the call either works or fails for real.
            self._token = None
            token = await self._token_now()
            answer = await self.http.get(url, params, headers={"Authorization": f"Bearer {token}"})
        try:
            return load_json(answer.body, answer.content_type)
        except PayloadError as error:
            raise self.bad_payload(error, path) from None

    async def fetch(self, now_s: float) -> SourceBatch:
        c = self.config

        async def one(code: str, zones: tuple[str, ...]) -> SourceBatch:
            params = [("region", code), ("signal_type", "co2_moer")]
            path = f"/v3/{c.moer_endpoint}"
            if c.moer_endpoint == "historical":
                params += [("start", _iso(now_s - c.historical_lookback_s)), ("end", _iso(now_s))]
            try:
                batch = parse_moer(await self._call(path, params), code, zones, now_s, c.moer_endpoint, c.keep_forecast)
            except PayloadError as error:
                raise self.bad_payload(error, f"{path} {code}") from None
            if not c.include_signal_index:
                return batch
            # The index is an extra: its failure is reported, and the MOER read above is kept.
            try:
                body = await self._call("/v3/signal-index", params[:2])
                index = parse_signal_index(body, code, zones, now_s)
            except PayloadError as error:
                return replace(batch, failures=(str(self.bad_payload(error, f"/v3/signal-index {code}")),))
            except SignalSourceError as error:
                return replace(batch, failures=(str(error),))
            return replace(
                batch, readings=batch.readings + index.readings, rejections=batch.rejections + index.rejections
            )

        return await self.per_code(one)
