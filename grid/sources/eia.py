"""EIA API v2, electricity/rto/region-data: EIA-930 hourly demand (D), day-ahead demand forecast (DF) and net
generation (NG) per balancing authority (the `respondent`, e.g. CISO).

Auth: the `api_key` query parameter. One request covers every respondent and type (facets), sorted newest first.
Each row is {period: 'YYYY-MM-DDTHH' (UTC), respondent, type, value (a number or numeric text), value-units}.
Units: values are `megawatthours` per hourly period, i.e. average MW over the hour, so D -> demand_mw and
DF -> demand_forecast_mw map one to one, and NG -> net_generation_mw (an extra column: no headroom term reads it).
Any other unit is rejected. The period is used as the observation time, as the packaged EIA-930 traces do. A
day-ahead forecast exists for hours after now; the reading is the forecast for the latest hour at or before now,
the same value the trace column holds for that hour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleet.errors import SignalSourceError
from fleet.sources import EiaSourceConfig
from grid.readings import Reading, Rejection, SourceBatch, choose_latest
from grid.sources.base import HttpSource
from grid.sources.http import HttpRuntime, env_secret, query
from grid.sources.parse import PayloadError, dig, load_json, parse_number, parse_utc_time, require_list, require_mapping

ROUTE = "/v2/electricity/rto/region-data/data/"
TYPE_COLUMNS: dict[str, str] = {"D": "demand_mw", "DF": "demand_forecast_mw", "NG": "net_generation_mw"}
VALUE_UNITS = "megawatthours"


def eia_hour(seconds: float) -> str:
    """EIA's hourly period text, UTC: 2022-09-07T01."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H")


def _row_value(row: dict[str, Any]) -> float | tuple[str, str]:
    unit = row.get("value-units")
    if unit != VALUE_UNITS:
        return "unit", f"unexpected unit {str(unit)[:40]!r}; expected {VALUE_UNITS!r}"
    if row.get("value") is None:
        return "missing", "value is null"
    try:
        return parse_number(row.get("value"))
    except PayloadError as error:
        return "bad_value", str(error)


def parse_region_data(
    body: Any, respondents: dict[str, tuple[str, ...]], series: tuple[str, ...], now_s: float
) -> SourceBatch:
    """Readings from a region-data answer: per respondent and type, the newest row at or before now that has a
    value in the expected unit. Newer rows that are unusable (null, wrong unit) are listed as rejections."""
    payload = require_mapping(body, "body")
    if "error" in payload:
        raise PayloadError("the API answered an error object")
    response = require_mapping(dig(payload, "response"), "response")
    rows = require_list(response.get("data"), "response.data")
    candidates: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for item in rows:
        if not isinstance(item, dict):
            continue
        key = (str(item.get("respondent")), str(item.get("type")))
        if key[0] not in respondents or key[1] not in series:
            continue
        try:
            # EIA writes hourly UTC periods without an offset ('2022-09-07T01'): they are UTC by the route's contract.
            at_s = parse_utc_time(item.get("period"), naive_is_utc=True)
        except PayloadError:
            continue
        candidates.setdefault(key, []).append((at_s, item))
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for respondent, zones in respondents.items():
        for type_code in series:
            rows_here = [(at_s, _row_value(row)) for at_s, row in candidates.get((respondent, type_code), [])]
            found = choose_latest(zones, TYPE_COLUMNS[type_code], rows_here, now_s, f"{respondent} {type_code}")
            readings += found[0]
            rejections += found[1]
    total = response.get("total")
    failures: tuple[str, ...] = ()
    try:
        if total is not None and int(str(total)) > len(rows):
            failures = (f"answer truncated: {len(rows)} of {total} rows (shorten lookback_s or raise page_length)",)
    except ValueError:
        pass
    return SourceBatch(tuple(readings), tuple(rejections), failures=failures)


class EiaSource(HttpSource):
    """The EIA API v2 region-data adapter. With no `zones` it asks for every fleet zone under its own code."""

    def __init__(
        self, config: EiaSourceConfig, fleet_zones: tuple[str, ...] = (), runtime: HttpRuntime | None = None
    ) -> None:
        zones = config.zones or {zone: zone for zone in fleet_zones}
        super().__init__(config.name, "eia", config.required, zones, config.http, runtime)
        self.config = config

    async def fetch(self, now_s: float) -> SourceBatch:
        c = self.config
        key = env_secret(c.api_key_env, c.api_key.get_secret_value() if c.api_key else None, self.name, "api_key")
        self.http.redact.add(key)
        respondents = self.codes()
        if not respondents:
            raise SignalSourceError(self.name, "no_data", "no zones to ask for")
        start = eia_hour(now_s - c.lookback_s)
        params = query(
            ("api_key", key),
            ("frequency", "hourly"),
            ("data[0]", "value"),
            ("start", start),
            ("sort[0][column]", "period"),
            ("sort[0][direction]", "desc"),
            ("offset", "0"),
            ("length", str(c.page_length)),
            repeated=[("facets[respondent][]", sorted(respondents)), ("facets[type][]", c.series)],
        )
        answer = await self.http.get(f"{c.base_url}{ROUTE}", params)
        try:
            return parse_region_data(load_json(answer.body, answer.content_type), respondents, tuple(c.series), now_s)
        except PayloadError as error:
            raise self.bad_payload(error, ROUTE) from None
