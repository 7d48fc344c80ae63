"""Integration tests share one local Ray instance and one deployed fleet per session (Ray takes seconds to start)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from router.config import FleetConfig, load_fleet, parse_fleet

PORT = int(os.environ.get("GRIDSHIFT_TEST_PORT", "18080"))
ADMIN_TOKEN = "integration-admin-token-0123456789"
PEAK = "2022-09-07T01:00:00Z"


@dataclass(frozen=True)
class Deployed:
    fleet: FleetConfig
    url: str
    admin_token: str
    control: Any


def integration_fleet() -> FleetConfig:
    """The default fleet, replaying the heat-wave peak in real time (so the grid holds still during a test),
    on a test port, without WAN emulation so tests spend their time on behaviour, not sleeps."""
    data = load_fleet().model_dump(mode="json")
    data["signal_source"].update(start=PEAK, speedup=1.0)
    data["gateway"].update(port=PORT, wan_emulation=False, state_refresh_s=0.1, probe_interval_s=0.5)
    return parse_fleet(data, source="integration fleet")


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    import ray
    from ray import serve

    from policies.actor import get_or_create_control_actor
    from serve_apps.up import deploy, start_local_ray

    fleet = integration_fleet()
    start_local_ray(num_cpus=2)
    try:
        control = get_or_create_control_actor(fleet)
        deploy(fleet, ADMIN_TOKEN, blocking_timeout_s=300)
        yield Deployed(fleet, f"http://127.0.0.1:{PORT}", ADMIN_TOKEN, control)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
