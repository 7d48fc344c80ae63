"""Integration tests share one local Ray instance and one deployed fleet per session (Ray takes seconds to start)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, parse_fleet

PORT = int(os.environ.get("GRIDSHIFT_TEST_PORT", "18080"))
ADMIN_TOKEN = "integration-admin-token-0123456789"
PEAK = "2022-09-07T01:00:00Z"
# The OpenADR VEN reads its credentials from the environment of its actor's process, which Ray's workers inherit
# from the driver that starts the cluster: set before ray.init, for the live VEN test's VTN.
OPENADR_CLIENT = ("gridshift-test-ven", "test-ven-secret-0123456789")


@dataclass(frozen=True)
class Deployed:
    fleet: FleetConfig
    url: str
    admin_token: str
    control: Any
    dashboard: str  # the Ray Jobs API of the shared cluster


def integration_fleet() -> FleetConfig:
    """The default fleet, replaying the heat-wave peak in real time (so the grid holds still during a test),
    on a test port, without WAN emulation so tests spend their time on behaviour, not sleeps. The policy decides
    every half second, recovers a rung after 2 s of calm and falls back after 5 s of silence, so its tests watch
    whole cycles in seconds rather than the default quarter-hour dwell."""
    data = load_fleet().model_dump(mode="json")
    data["signal_source"].update(start=PEAK, speedup=1.0)
    data["gateway"].update(port=PORT, wan_emulation=False, state_refresh_s=0.1, probe_interval_s=0.5)
    data["policy"].update(period_s=0.5, min_dwell_s=2.0, fallback_after_s=5.0)
    # Tenants the tests create live in a throwaway database, never in the user's ~/.gridshift.
    data["tenants"]["database_url"] = f"sqlite:///{tempfile.mkdtemp(prefix='gridshift-tenants-')}/tenants.db"
    return parse_fleet(data, source="integration fleet")


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    import ray
    from ray import serve

    from policies.actors.control import get_or_create_control_actor
    from serve_apps.up import deploy, start_local_ray

    fleet = integration_fleet()
    os.environ["GRIDSHIFT_OPENADR_CLIENT_ID"], os.environ["GRIDSHIFT_OPENADR_CLIENT_SECRET"] = OPENADR_CLIENT
    dashboard = start_local_ray(num_cpus=2, fleet=fleet)
    if dashboard is None:  # pragma: no cover - start_local_ray starts the dashboard unless told not to
        raise RuntimeError("the test cluster has no dashboard: batch jobs cannot be submitted as Ray Jobs")
    try:
        control = get_or_create_control_actor(fleet)
        deploy(fleet, ADMIN_TOKEN, blocking_timeout_s=300)
        yield Deployed(fleet, f"http://127.0.0.1:{PORT}", ADMIN_TOKEN, control, dashboard)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
