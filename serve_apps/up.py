"""Deploying the fleet: start a local Ray cluster, run the fleet's Serve application on it, wait until it serves.

The `gridshift up` command built on these is serve_apps/cli/up.py.
"""

from __future__ import annotations

import logging
import time

from fleet.config import FleetConfig


def start_local_ray(num_cpus: int | None = None, *, dashboard: bool = True) -> str | None:
    """Start a fresh local Ray cluster, on loopback; returns its dashboard's URL (the Ray Jobs API, which batch and
    training jobs are submitted through), or None without one."""
    import ray

    # Keep the object store small: embeddings are tiny, and the fleet shares a 2-core, few-GiB machine.
    # address="local": always a fresh cluster; without it ray.init would join one that `ray start` recorded.
    context = ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        object_store_memory=256 * 1024 * 1024,
        namespace="gridshift",
        logging_level=logging.WARNING,
        configure_logging=True,
        log_to_driver=False,
    )
    url = context.dashboard_url
    return f"http://{url}" if url and "://" not in url else url or None


def deploy(
    fleet: FleetConfig, admin_token: str, *, blocking_timeout_s: float = 600.0, proxy_location: str = "EveryNode"
) -> None:
    """Deploy the fleet's Serve application on the connected Ray cluster and wait until it is running.
    `proxy_location` HeadOnly: one HTTP proxy (several nodes on one host would contend for the port)."""
    from ray import serve

    from serve_apps.admin_token import admin_token_digest
    from serve_apps.app import APP_NAME, build_app

    serve.start(http_options={"host": fleet.gateway.host, "port": fleet.gateway.port}, proxy_location=proxy_location)
    serve.run(
        build_app(fleet, admin_token_digest(admin_token)),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
    )
    wait_until_running(APP_NAME, blocking_timeout_s)


def wait_until_running(app_name: str, timeout_s: float) -> None:
    """Block until the Serve application is RUNNING; raise with Serve's message if it fails or times out."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(app_name)
        if status is not None and status.status == "RUNNING":
            return
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(f"Serve application {app_name!r} failed: {status.message}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Serve application {app_name!r} not running after {timeout_s:.0f} s")
        time.sleep(0.5)
