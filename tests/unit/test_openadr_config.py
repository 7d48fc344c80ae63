"""The fleet config's optional `openadr` section: defaults, cross-checks against the fleet, credentials."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.errors import ConfigError
from fleet.loaders import load_fleet, parse_fleet
from fleet.openadr import OpenADRConfig
from openadr.client import read_credentials


def fleet_with(openadr: dict[str, Any] | None) -> dict[str, Any]:
    data = load_fleet().model_dump(mode="json")
    data["openadr"] = openadr
    return data


def test_absent_by_default_and_parsed_when_given() -> None:
    assert load_fleet().openadr is None
    fleet = parse_fleet(fleet_with({"vtn_url": "http://127.0.0.1:25080", "ven_name": "gridshift"}))
    assert fleet.openadr is not None
    assert fleet.openadr.spec_version == "3.1.0"
    assert fleet.openadr.resource_names(fleet.region_names) == {name: name for name in fleet.region_names}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"resources": {"eu-west-9": "x"}}, "openadr.resources: unknown region(s) ['eu-west-9']"),
        ({"resources": {"us-east-1": "us-west-2"}}, "resourceName(s) ['us-west-2'] would name two regions"),
        ({"resources": {"us-east-1": "a", "us-east-2": "a"}}, "two regions share resourceName(s) ['a']"),
        ({"price_levels_usd_per_mwh": [300, 150, 1000]}, "must strictly increase"),
        ({"spec_version": "2.0b"}, "openadr.spec_version"),
        ({"vtn_url": "ftp://x"}, "openadr.vtn_url"),
        ({"pol_interval_s": 5}, "openadr.pol_interval_s"),
    ],
)
def test_bad_sections_name_the_field(section: dict[str, Any], message: str) -> None:
    openadr = {"vtn_url": "http://127.0.0.1:25080", "ven_name": "gridshift", **section}
    with pytest.raises(ConfigError, match="invalid fleet config") as caught:
        parse_fleet(fleet_with(openadr))
    assert message in str(caught.value)


def test_credentials_come_from_the_named_variables_and_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    config = OpenADRConfig(vtn_url="http://127.0.0.1:25080", ven_name="v", client_secret_env="MY_SECRET")
    monkeypatch.setenv("GRIDSHIFT_OPENADR_CLIENT_ID", "ven-1")
    monkeypatch.delenv("MY_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"\['MY_SECRET'\]"):
        read_credentials(config)
    monkeypatch.setenv("MY_SECRET", "s3cret-value")
    assert read_credentials(config) == ("ven-1", "s3cret-value")
