"""The `signal_source` section: replay a trace (the default), or poll live providers with credentials and HTTP policy.

Credentials are named here by environment variable and read by the adapters in grid/sources when a call needs
them (never at import); an inline secret is a `SecretStr`, so it shows as `**********` in any repr, log or error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

from fleet.base import HTTP_URL_PATTERN, StrictModel, UtcDatetime
from fleet.signals import COLUMN_UNITS

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class TraceSourceConfig(StrictModel):
    """Replay a trace file: the default, reproducible signal source."""

    kind: Literal["trace"] = "trace"
    path: str | None = Field(None, description="Trace file (CSV or CSV.gz); null means the packaged grid_2022 trace.")
    start: UtcDatetime = Field(description="Replay start time on the trace (UTC).")
    end: UtcDatetime | None = Field(None, description="Replay end time (UTC); null runs to the trace's end.")
    speedup: PositiveFloat = Field(1.0, description="Trace seconds per wall second.")

    @model_validator(mode="after")
    def _ordered(self) -> TraceSourceConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self


class HttpPolicyConfig(StrictModel):
    """How one source talks HTTP: timeouts, retries with back-off, its rate limit and its response cache."""

    timeout_s: PositiveFloat = Field(10.0, le=300.0, description="Per-request limit (connect, send, read), s.")
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Tries per request, the first included; timeouts, connection errors, 5xx "
        "and 429 are retried, other answers are not.",
    )
    backoff_initial_s: PositiveFloat = Field(1.0, description="Wait before the first retry, s.")
    backoff_multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Each further retry waits this much longer.")
    backoff_max_s: PositiveFloat = Field(30.0, description="Longest wait between two tries, s.")
    jitter_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Each wait is drawn uniformly from [(1 - jitter) x w, w], so pollers that failed together do "
        "not retry in step.",
    )
    min_interval_s: NonNegativeFloat = Field(
        1.0, description="Least time between two calls to this provider, s (stays under its rate limit)."
    )
    max_retry_after_s: PositiveFloat = Field(
        120.0,
        description="Longest 429 Retry-After waited out within one poll, s; a longer one fails the poll and the "
        "source makes no call until it has passed.",
    )
    cache_ttl_s: NonNegativeFloat = Field(
        60.0, description="An identical request within this many seconds is answered from memory, s (0: no cache)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> HttpPolicyConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s ({self.backoff_initial_s}) must not exceed backoff_max_s")
        return self


class _SourceBase(StrictModel):
    required: bool = Field(
        True, description="A required source that is down makes `gridshift signals check` exit non-zero."
    )
    zones: dict[str, str] = Field(
        default_factory=dict,
        description="gridshift zone (a region's `zone` or `signal_zones` code) -> the provider's code for it.",
    )
    http: HttpPolicyConfig = Field(default_factory=HttpPolicyConfig, description="HTTP policy of this source.")

    @field_validator("zones")
    @classmethod
    def _codes_present(cls, value: dict[str, str]) -> dict[str, str]:
        empty = sorted(zone for zone, code in value.items() if not zone.strip() or not code.strip())
        if empty:
            raise ValueError(f"empty zone or provider code for {empty}")
        return value


def _needs_zones(zones: dict[str, str], provider: str) -> None:
    if not zones:
        raise ValueError(f"zones: map each gridshift zone to its {provider} code, e.g. {{CISO: ...}}")


class WattTimeSourceConfig(_SourceBase):
    """WattTime API v3: marginal operating emissions (MOER) per region, converted from lbs/MWh to gCO2/kWh."""

    provider: Literal["watttime"] = Field(description="Source type.")
    name: str = Field("watttime", min_length=1, description="Unique name of this source (health, metrics).")
    base_url: str = Field("https://api.watttime.org", pattern=HTTP_URL_PATTERN, description="API root (login and /v3).")
    username_env: str = Field("WATTTIME_USER", pattern=_ENV_NAME, description="Environment variable: user name.")
    password_env: str = Field("WATTTIME_PASSWORD", pattern=_ENV_NAME, description="Environment variable: password.")
    username: SecretStr | None = Field(None, description="User name inline (prefer username_env).")
    password: SecretStr | None = Field(None, description="Password inline (prefer password_env).")
    moer_endpoint: Literal["forecast", "historical"] = Field(
        "forecast",
        description="Where the current MOER comes from: the first point of /v3/forecast (WattTime's real-time "
        "value) or the latest point of /v3/historical.",
    )
    historical_lookback_s: PositiveFloat = Field(
        3600.0, description="With moer_endpoint historical: how far back the query starts, s."
    )
    include_signal_index: bool = Field(
        False, description="Also read /v3/signal-index (a 0-100 percentile, shown in health, not a trace column)."
    )
    keep_forecast: bool = Field(
        True, description="Keep the rest of /v3/forecast as a carbon forecast in the store (for later planning)."
    )
    token_lifetime_s: PositiveFloat = Field(
        1500.0, description="Log in again after this long, s (WattTime tokens last 30 min); a 401 also renews."
    )

    @model_validator(mode="after")
    def _zones(self) -> WattTimeSourceConfig:
        _needs_zones(self.zones, "WattTime region")
        return self


class ElectricityMapsSourceConfig(_SourceBase):
    """Electricity Maps API v3: carbon intensity (gCO2eq/kWh) per zone, latest and forecast."""

    provider: Literal["electricitymaps"] = Field(description="Source type.")
    name: str = Field("electricitymaps", min_length=1, description="Unique name of this source (health, metrics).")
    base_url: str = Field(
        "https://api.electricitymaps.com", pattern=HTTP_URL_PATTERN, description="API root (/v3 below it)."
    )
    token_env: str = Field(
        "ELECTRICITYMAPS_TOKEN", pattern=_ENV_NAME, description="Environment variable: the `auth-token` value."
    )
    token: SecretStr | None = Field(None, description="The auth token inline (prefer token_env).")
    emission_factor_type: Literal["lifecycle", "direct"] = Field(
        "lifecycle", description="Lifecycle (the API's default) or direct (combustion only) emission factors."
    )
    include_forecast: bool = Field(
        False, description="Also read /v3/carbon-intensity/forecast into the store (for later planning)."
    )

    @model_validator(mode="after")
    def _zones(self) -> ElectricityMapsSourceConfig:
        _needs_zones(self.zones, "Electricity Maps zone")
        return self


EiaSeries = Literal["D", "DF", "NG"]


def _all_series() -> list[EiaSeries]:
    return ["D", "DF", "NG"]


class EiaSourceConfig(_SourceBase):
    """EIA API v2, electricity/rto/region-data: EIA-930 hourly demand, day-ahead demand forecast, net generation."""

    provider: Literal["eia"] = Field(description="Source type.")
    name: str = Field("eia", min_length=1, description="Unique name of this source (health, metrics).")
    base_url: str = Field("https://api.eia.gov", pattern=HTTP_URL_PATTERN, description="API root (/v2 below it).")
    api_key_env: str = Field("EIA_API_KEY", pattern=_ENV_NAME, description="Environment variable: the api_key.")
    api_key: SecretStr | None = Field(None, description="The api_key inline (prefer api_key_env).")
    series: list[EiaSeries] = Field(
        default_factory=_all_series,
        min_length=1,
        description="EIA-930 types to read: D demand, DF day-ahead demand forecast, NG net generation (MW).",
    )
    lookback_s: PositiveFloat = Field(
        172_800.0, description="Query window back from now, s (EIA-930 posts hours late and revises them)."
    )
    page_length: PositiveInt = Field(5000, le=5000, description="Rows asked for per request (the API's cap is 5000).")


class FieldMapping(StrictModel):
    """One payload field read into one column, with the factor that converts its unit."""

    field: str = Field(min_length=1, description="Field name in a JSON record or CSV header.")
    scale: float = Field(1.0, description="Multiply the value by this to reach the column's unit (e.g. 1e-3 kW->MW).")


class GenericHttpSourceConfig(_SourceBase):
    """Any JSON or CSV over HTTP, read through a declarative mapping of time, zone and value fields."""

    provider: Literal["http"] = Field(description="Source type.")
    name: str = Field(min_length=1, description="Unique name of this source (health, metrics).")
    url: str = Field(
        pattern=HTTP_URL_PATTERN, description="URL to GET; `{zone}` in it is replaced by each zone's provider code."
    )
    format: Literal["json", "csv"] = Field("json", description="Body format.")
    records_path: str = Field(
        "", description="JSON: dotted path to the list of records (e.g. response.data); empty: the body itself."
    )
    time_field: str = Field(min_length=1, description="Field holding each record's observation time.")
    time_format: Literal["iso8601", "epoch_s", "epoch_ms"] = Field("iso8601", description="How the time is written.")
    naive_time_is_utc: bool = Field(
        False, description="Read an ISO time without offset as UTC (else such a record is rejected)."
    )
    zone_field: str | None = Field(
        None, description="Field naming the record's zone (provider code); null: one zone per request."
    )
    filters: dict[str, str] = Field(
        default_factory=dict, description="Keep only records whose field equals this text (e.g. {type: D})."
    )
    columns: dict[str, FieldMapping] = Field(
        min_length=1, description="Trace column (demand_mw, carbon_g_per_kwh, ...) -> the field that feeds it."
    )
    params: dict[str, str] = Field(default_factory=dict, description="Fixed query parameters.")
    params_env: dict[str, str] = Field(
        default_factory=dict, description="Query parameter -> environment variable holding its (secret) value."
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="Request header -> environment variable holding its (secret) value."
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
        unknown = sorted(set(value) - set(COLUMN_UNITS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; expected some of {sorted(COLUMN_UNITS)}")
        return value

    @field_validator("params_env", "headers_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value.values() if not name.isidentifier())
        if bad:
            raise ValueError(f"not environment variable names: {bad}")
        return value

    @model_validator(mode="after")
    def _one_zone_per_request(self) -> GenericHttpSourceConfig:
        _needs_zones(self.zones, "source")
        if self.zone_field is None and "{zone}" not in self.url and len(self.zones) > 1:
            raise ValueError("several zones need `{zone}` in url or a zone_field that says which record is which")
        return self


SourceConfig = Annotated[
    WattTimeSourceConfig | ElectricityMapsSourceConfig | EiaSourceConfig | GenericHttpSourceConfig,
    Field(discriminator="provider"),
]


class LiveSourceConfig(StrictModel):
    """Poll live grid feeds on the wall clock; a history trace supplies what feeds cannot (the trailing peak)."""

    kind: Literal["live"] = Field(description="Signal source type: live feeds (see docs/signals.md).")
    sources: list[SourceConfig] = Field(min_length=1, description="Feeds to poll; the newest value of each wins.")
    history_trace: str | None = Field(
        None,
        description="Trace file whose past demand sets each zone's reference peak and feeds the batch planner; "
        "null: the packaged grid_2022 trace.",
    )
    poll_interval_s: PositiveFloat = Field(300.0, ge=1.0, description="Time between two polls of every source, s.")
    max_reading_age_s: PositiveFloat = Field(
        604_800.0, description="A value older than this when it arrives is rejected as stale, s."
    )
    max_clock_skew_s: NonNegativeFloat = Field(
        300.0, description="A value stamped more than this after now is rejected as from the future, s."
    )
    retained_points_per_series: PositiveInt = Field(
        20_000, description="Accepted values kept per zone and column for trailing statistics (oldest dropped)."
    )

    @property
    def speedup(self) -> float:
        """Live signals run on the wall clock: one second per second (the trace source's replay factor)."""
        return 1.0

    @model_validator(mode="after")
    def _unique_names(self) -> LiveSourceConfig:
        names = [source.name for source in self.sources]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"sources: duplicate source name(s) {repeated}; give each a distinct `name`")
        return self
