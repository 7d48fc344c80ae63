"""Any JSON or CSV over HTTP, read through the declarative mapping of `GenericHttpSourceConfig`: where the
records are, which field is the time, which the zone, and which field (times which factor) feeds each column.

Units are the operator's to state: `scale` converts the field's unit into the column's (COLUMN_UNITS), e.g.
0.001 for kW into demand_mw. Secrets go in headers or query parameters named by environment variable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fleet.sources import GenericHttpSourceConfig
from grid.readings import Candidate, Reading, Rejection, SourceBatch, choose_latest
from grid.sources.base import HttpSource
from grid.sources.http import HttpRuntime, env_secret
from grid.sources.parse import PayloadError, dig, load_json, parse_epoch, parse_number, parse_utc_time, require_list

_EPOCH_SCALE = {"epoch_s": 1.0, "epoch_ms": 1e-3}


def records_of(body: bytes, config: GenericHttpSourceConfig) -> list[Mapping[str, Any]]:
    """The body's records: CSV rows by header, or the JSON list at `records_path` (one object counts as one)."""
    if config.format == "csv":
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PayloadError("body is not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = [
            f
            for f in (config.time_field, *(m.field for m in config.columns.values()))
            if f not in (reader.fieldnames or [])
        ]
        if missing:
            raise PayloadError(f"CSV header lacks {missing}")
        return list(reader)
    found = dig(load_json(body), config.records_path)
    items = [found] if isinstance(found, dict) else require_list(found, config.records_path or "body")
    return [item for item in items if isinstance(item, dict)]


def _time_of(record: Mapping[str, Any], config: GenericHttpSourceConfig) -> int:
    raw = record.get(config.time_field)
    if config.time_format == "iso8601":
        return parse_utc_time(raw, naive_is_utc=config.naive_time_is_utc)
    return parse_epoch(raw, _EPOCH_SCALE[config.time_format])


def parse_records(
    records: list[Mapping[str, Any]], config: GenericHttpSourceConfig, by_code: dict[str, tuple[str, ...]], now_s: float
) -> SourceBatch:
    """Readings (newest usable record at or before now per zone and column) from mapped records. `by_code` maps
    the provider codes this answer may hold to gridshift zones; without a zone_field it holds exactly one."""
    candidates: dict[tuple[str, str], list[Candidate]] = {}
    rejections: list[Rejection] = []
    for record in records:
        if any(str(record.get(name)) != wanted for name, wanted in config.filters.items()):
            continue
        code = str(record.get(config.zone_field)) if config.zone_field else next(iter(by_code))
        if code not in by_code:
            continue
        try:
            at_s = _time_of(record, config)
        except PayloadError as error:
            rejections += [Rejection(z, c, "bad_time", str(error)) for z in by_code[code] for c in config.columns]
            continue
        for column, mapping in config.columns.items():
            raw = record.get(mapping.field)
            outcome: float | tuple[str, str]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                outcome = ("missing", f"{mapping.field} is empty")
            else:
                try:
                    outcome = parse_number(raw) * mapping.scale
                except PayloadError as error:
                    outcome = ("bad_value", str(error))
            candidates.setdefault((code, column), []).append((at_s, outcome))
    readings: list[Reading] = []
    for code, zones in by_code.items():
        for column in config.columns:
            found = choose_latest(zones, column, candidates.get((code, column), []), now_s, f"{code} {column}")
            readings += found[0]
            rejections += found[1]
    return SourceBatch(tuple(readings), tuple(rejections))


class GenericHttpSource(HttpSource):
    """The generic JSON/CSV adapter."""

    def __init__(self, config: GenericHttpSourceConfig, runtime: HttpRuntime | None = None) -> None:
        super().__init__(config.name, "http", config.required, config.zones, config.http, runtime)
        self.config = config

    def _secrets(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        params = list(self.config.params.items())
        headers: dict[str, str] = {}
        for param, env in sorted(self.config.params_env.items()):
            params.append((param, env_secret(env, None, self.name, f"query parameter {param}")))
        for header, env in sorted(self.config.headers_env.items()):
            headers[header] = env_secret(env, None, self.name, f"header {header}")
        self.http.redact.add(*(v for _, v in params[len(self.config.params) :]), *headers.values())
        return params, headers

    async def _read(self, url: str, by_code: dict[str, tuple[str, ...]], now_s: float) -> SourceBatch:
        params, headers = self._secrets()
        answer = await self.http.get(url, params, headers=headers or None)
        try:
            return parse_records(records_of(answer.body, self.config), self.config, by_code, now_s)
        except PayloadError as error:
            raise self.bad_payload(error, self.config.name) from None

    async def fetch(self, now_s: float) -> SourceBatch:
        url = self.config.url
        if "{zone}" in url:

            async def one(code: str, zones: tuple[str, ...]) -> SourceBatch:
                return await self._read(url.replace("{zone}", quote(code, safe="")), {code: zones}, now_s)

            return await self.per_code(one)
        return await self._read(url, self.codes(), now_s)
