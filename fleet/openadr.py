"""The `openadr` section: where the VTN is, who the VEN is, and how its signals map to the fleet.

Credentials are named here by environment variable and read by the VEN (openadr/client.py) when it starts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PositiveFloat, PositiveInt, model_validator

from fleet.base import HTTP_URL_PATTERN, StrictModel

SpecVersion = Literal["3.0.1", "3.1.0"]
SPEC_VERSIONS: tuple[SpecVersion, ...] = ("3.0.1", "3.1.0")


def _ascending_triple(value: tuple[float, float, float]) -> tuple[float, float, float]:
    if not value[0] < value[1] < value[2]:
        raise ValueError(f"thresholds for levels 1, 2, 3 must strictly increase, got {list(value)}")
    return value


LevelThresholds = Annotated[tuple[float, float, float], AfterValidator(_ascending_triple)]


class WebhookConfig(StrictModel):
    """The VEN's callback server, which the VTN notifies (subscription webhooks)."""

    host: str = Field("127.0.0.1", min_length=1, description="Listen address (loopback unless the VTN is remote).")
    port: int = Field(0, ge=0, le=65535, description="Listen port; 0 picks a free one.")
    public_url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        description="Callback base URL the VTN should call, if not http://host:port (behind NAT or a proxy).",
    )


class OpenADRConfig(StrictModel):
    """An OpenADR 3 VEN for this fleet: one VEN, one resource per region."""

    vtn_url: str = Field(
        pattern=HTTP_URL_PATTERN, description="Base URL of the VTN's OpenADR 3 API (with its base path)."
    )
    spec_version: SpecVersion = Field("3.1.0", description="OpenADR 3 version the VTN speaks: 3.0.1 or 3.1.0.")
    ven_name: str = Field(min_length=1, max_length=128, description="venName, unique on the VTN.")
    client_id_env: str = Field(
        "GRIDSHIFT_OPENADR_CLIENT_ID", min_length=1, description="Environment variable holding the OAuth2 client ID."
    )
    client_secret_env: str = Field(
        "GRIDSHIFT_OPENADR_CLIENT_SECRET",
        min_length=1,
        description="Environment variable holding the OAuth2 client secret (read at start, never logged).",
    )
    token_url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        description="OAuth2 token endpoint; null: 3.1.0 asks GET /auth/server, else {vtn_url}/auth/token.",
    )
    program_names: list[str] = Field(
        default_factory=list, description="Programs whose events the VEN follows; empty: every program it can see."
    )
    resources: dict[str, str] = Field(
        default_factory=dict,
        description="Region -> resourceName registered on the VTN; a region not listed uses its own name.",
    )
    poll_interval_s: PositiveFloat = Field(30.0, description="How often programs and events are polled, s.")
    request_timeout_s: PositiveFloat = Field(10.0, description="Timeout of one HTTP request to the VTN, s.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a failed idempotent request.")
    retry_backoff_s: PositiveFloat = Field(0.5, description="First retry delay, doubled each retry (with jitter), s.")
    webhook: WebhookConfig | None = Field(
        default_factory=WebhookConfig, description="Callback server for subscriptions; null: polling only."
    )
    sample_period_s: PositiveFloat = Field(
        10.0, description="How often each region's power is sampled for usage reports, s."
    )
    usage_bucket_s: PositiveInt = Field(
        900, description="Report interval length for event intervals without a finite duration, s."
    )
    capacity_reports: bool = Field(True, description="Report flexible capacity when an event is first seen.")
    usage_reports: bool = Field(True, description="Report measured power against baseline during and after events.")
    lever_breakdown: bool = Field(
        True, description="Add flexible kW per lever as private GRIDSHIFT_<LEVER>_AVAILABLE report payloads."
    )
    price_levels_usd_per_mwh: LevelThresholds = Field(
        (150.0, 300.0, 1000.0), description="PRICE at or above each value derives signal level 1, 2, 3, USD/MWh."
    )
    ghg_levels_g_per_kwh: LevelThresholds = Field(
        (450.0, 650.0, 850.0), description="GHG at or above each value derives signal level 1, 2, 3, gCO2/kWh."
    )
    signal_levels_as_events: bool = Field(
        False, description="Also post a price or GHG signal's derived level (1..3) as a DR event on the region."
    )
    status_file: str | None = Field(
        None, description="Where the VEN writes its status for `gridshift openadr status`; null: the temp folder."
    )

    @model_validator(mode="after")
    def _distinct_resources(self) -> OpenADRConfig:
        names = list(self.resources.values())
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"resources: two regions share resourceName(s) {duplicates}")
        return self

    def check_regions(self, regions: tuple[str, ...]) -> None:
        """Raise ValueError if `resources` names a region the fleet does not have (FleetConfig calls this)."""
        unknown = sorted(set(self.resources) - set(regions))
        if unknown:
            raise ValueError(f"openadr.resources: unknown region(s) {unknown}; the fleet has {list(regions)}")
        # A region's default resource name is its own; it must not collide with another region's explicit one.
        effective = [self.resources.get(region, region) for region in regions]
        clashes = sorted({name for name in effective if effective.count(name) > 1})
        if clashes:
            raise ValueError(f"openadr.resources: resourceName(s) {clashes} would name two regions")

    def resource_names(self, regions: tuple[str, ...]) -> dict[str, str]:
        """Region -> resourceName for every region of the fleet."""
        return {region: self.resources.get(region, region) for region in regions}
