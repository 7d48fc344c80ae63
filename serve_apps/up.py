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
    fleet: FleetConfig,
    admin_token: str,
    *,
    blocking_timeout_s: float = 600.0,
    proxy_location: str = "EveryNode",
    log_encoding: str = "TEXT",
) -> None:
    """Deploy the fleet's Serve application on the connected Ray cluster and wait until it is running.
    `proxy_location` HeadOnly: one HTTP proxy (several nodes on one host would contend for the port).
    `log_encoding` JSON: Serve's structured logs (one JSON object a line, with replica and request ids)."""
    from ray import serve

    from serve_apps.admin_token import admin_token_digest
    from serve_apps.app import APP_NAME, build_app

    logging_config = {"encoding": log_encoding}
    serve.start(
        http_options={"host": fleet.gateway.host, "port": fleet.gateway.port},
        proxy_location=proxy_location,
        logging_config=logging_config,
    )
    serve.run(
        build_app(fleet, admin_token_digest(admin_token)),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
        logging_config=logging_config,
    )
    deadline = time.monotonic() + blocking_timeout_s
    wait_until_running(APP_NAME, blocking_timeout_s)
    # RUNNING means Serve started the replicas; ready means the gateway has a control state and every region has
    # answered, warmed up: the first request then succeeds (GET /readyz, what load balancers probe too).
    wait_until_ready(local_url(fleet), max(deadline - time.monotonic(), 30.0))


def local_url(fleet: FleetConfig) -> str:
    """The gateway's URL from this host (a gateway on every interface is reached on loopback)."""
    host = fleet.gateway.host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{fleet.gateway.port}"


def wait_until_ready(url: str, timeout_s: float) -> None:
    """Block until the gateway at `url` answers /readyz with 200; raise with its last answer if it does not."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                answer = client.get("/readyz")
                if answer.status_code == 200:
                    return
                last = f"HTTP {answer.status_code}: {answer.text[:500]}"
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.25)
    raise RuntimeError(f"the gateway at {url} was not ready after {timeout_s:.0f} s ({last})")


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
