"""Deploying the fleet: start a local Ray cluster, run the fleet's Serve application on it, wait until it serves.

The `gridshift up` command built on these is serve_apps/cli/up.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from fleet.config import FleetConfig
from serve_apps.ingress import cluster_ingress, plan_ingress, ray_environment


def start_local_ray(
    num_cpus: int | None = None, *, dashboard: bool = True, fleet: FleetConfig | None = None
) -> str | None:
    """Start a fresh local Ray cluster, on loopback; returns its dashboard's URL (the Ray Jobs API, which batch and
    training jobs are submitted through), or None without one. With `fleet`, the cluster is started so that the
    fleet's gateway replica serves its port itself (Serve's direct ingress) unless the fleet asks for the proxy."""
    import ray

    # Keep the object store small: embeddings are tiny, and the fleet shares a 2-core, few-GiB machine.
    # address="local": always a fresh cluster; without it ray.init would join one that `ray start` recorded.
    with _environment(ray_environment(fleet.gateway) if fleet is not None else {}):
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


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set `variables` while Ray's processes start (they inherit them), then restore this process's own: a later
    cluster started from the same process, for another fleet, must not inherit this one's ports."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    `log_encoding` JSON: Serve's structured logs (one JSON object a line, with replica and request ids).
    Raises IngressMismatch, before Serve starts, when the cluster cannot serve the fleet's gateway.ingress."""
    from ray import serve

    from serve_apps.admin_token import admin_token_digest
    from serve_apps.app import APP_NAME, build_app

    # Under direct ingress the gateway replica takes gateway.port and the proxy Serve always starts moves aside.
    plan = plan_ingress(fleet.gateway, cluster_ingress())
    logging_config = {"encoding": log_encoding}
    serve.start(
        http_options={"host": fleet.gateway.host, "port": plan.proxy_port},
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
