"""Serve application: the gateway ingress deployment and one regional deployment per in-cluster region."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.actor import ActorHandle
from ray.serve import Application

from batch.driver import cluster_nodes, launch_in_cluster
from batch.spec import BatchJobSpec
from policies.actor import ControlActor, get_or_create_control_actor
from policies.control import ControlState, GatewayLoad
from policies.openadr_actor import get_or_create_openadr_actor
from policies.policy_actor import get_or_create_policy_actor
from router.config import (
    FleetConfig,
    RegionConfig,
    RoutingMode,
    ServingConfig,
    configured_admin_token,
    load_fleet,
    load_rtt_matrix,
    parse_fleet,
)
from router.events import DREvent
from router.placement import ClusterNode, region_placement
from serve_apps.backends import HandleBackend, HttpBackend, RegionBackend
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import admin_token_digest, create_app
from serve_apps.regional import RegionalApp

APP_NAME = "gridshift"


class RayControlSource:
    """ControlSource over the control actor's handle."""

    def __init__(self, actor: ActorHandle[ControlActor]) -> None:
        # Ray's stubs type `.remote()` results as awaitables that never return; use the handle untyped.
        self._actor: Any = actor

    async def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        result: ControlState | None = await self._actor.sync.remote(gateway_id, load, known_version)
        return result

    async def telemetry(self) -> dict[str, object]:
        telemetry: dict[str, object] = await self._actor.telemetry.remote()
        return telemetry

    async def openadr_status(self) -> dict[str, Any] | None:
        status: dict[str, Any] | None = await self._actor.openadr_status.remote()
        return status

    async def post_event(self, event: DREvent) -> DREvent:
        posted: DREvent = await self._actor.post_event.remote(event)
        return posted

    async def clear_event(self, event_id: str) -> DREvent | None:
        cleared: DREvent | None = await self._actor.clear_event.remote(event_id)
        return cleared

    async def list_events(self) -> list[DREvent]:
        events: list[DREvent] = await self._actor.list_events.remote()
        return events

    async def clock_now_s(self) -> float:
        now: float = await self._actor.clock_now_s.remote()
        return now

    async def job_statuses(self) -> list[dict[str, object]]:
        statuses: list[dict[str, object]] = await self._actor.job_statuses.remote()
        return statuses

    async def pause_job(self, job_id: str) -> bool:
        known: bool = await self._actor.pause_job.remote(job_id)
        return known

    async def resume_job(self, job_id: str) -> bool:
        known: bool = await self._actor.resume_job.remote(job_id)
        return known


class RayBatchLauncher:
    """Launches submitted jobs as detached actors in this cluster."""

    def __init__(self, fleet: FleetConfig) -> None:
        self._fleet = fleet

    async def launch(self, spec: BatchJobSpec) -> None:
        # Validation reads the input and imports the pipeline: off the event loop.
        await asyncio.to_thread(launch_in_cluster, spec, self._fleet)


@serve.deployment(max_ongoing_requests=1024)
@serve.ingress()
class Gateway:
    """The HTTP entry point. Its routes live in serve_apps.http_api; this class wires Ray into them."""

    def __init__(
        self, fleet_data: dict[str, Any], region_handles: dict[str, Any], admin_token_sha256: str | None
    ) -> None:
        fleet = parse_fleet(fleet_data, source="gateway fleet")
        backends: dict[str, RegionBackend] = {
            region.name: HttpBackend(region.name, region.endpoint_url)
            if region.endpoint_url
            else HandleBackend(region.name, region_handles[region.name])
            for region in fleet.regions
        }
        control = RayControlSource(get_or_create_control_actor(fleet))
        # Started (or found) here, so `serve run serve_config.yaml` gets them as `gridshift up` does.
        if fleet.policy.enabled:
            get_or_create_policy_actor(fleet)
        if fleet.openadr is not None:
            get_or_create_openadr_actor(fleet)
        self.core = GatewayCore(
            fleet, load_rtt_matrix(fleet.latency), control, backends, batch_launcher=RayBatchLauncher(fleet)
        )
        self._admin_token_sha256 = admin_token_sha256

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.core, self._admin_token_sha256)


REGIONAL_DEPLOYMENT_PREFIX = "region-"


def urgent_classes(fleet: FleetConfig) -> tuple[str, ...]:
    """Classes served where they arrive (mode stay): their batches never wait longer than the deployment's."""
    return tuple(name for name, workload in fleet.workload_classes.items() if workload.mode is RoutingMode.STAY)


def regional_deployment_name(region: str) -> str:
    return f"{REGIONAL_DEPLOYMENT_PREFIX}{region}"


def regional_actor_options(
    region: RegionConfig, serving: ServingConfig, nodes: Sequence[ClusterNode]
) -> dict[str, Any]:
    """Ray actor options of a region's replicas: on that region's nodes when the cluster has any (see
    router.placement.region_placement), anywhere on a cluster without per-region nodes (a laptop, CI)."""
    return {"num_cpus": serving.replica_num_cpus, **region_placement(region, serving.region_pinning, nodes)}


def build_app(
    fleet: FleetConfig, admin_token_sha256: str | None, nodes: Sequence[ClusterNode] | None = None
) -> Application:
    """The whole fleet as one Serve application: regional deployments bound into the gateway.
    `nodes` defaults to the connected cluster's (placement is decided once, at build time)."""
    if nodes is None:
        nodes = cluster_nodes()
    serving = fleet.serving
    handles = {}
    for region in fleet.regions:
        if region.endpoint_url:
            continue  # served by another cluster over HTTP
        deployment = RegionalApp.options(
            name=regional_deployment_name(region.name),
            num_replicas=serving.replicas_per_region,
            user_config=serving.knobs.model_dump(mode="json"),
            ray_actor_options=regional_actor_options(region, serving, nodes),
        )
        handles[region.name] = deployment.bind(
            region.name,
            serving.model_import_path,
            serving.model_kwargs,
            serving.model_name,
            serving.batch_wait_timeout_s,
            serving.torch_threads,
            fleet.policy.knob_refresh_s,
            fleet.policy.fallback_after_s,
            urgent_classes=urgent_classes(fleet),
        )
    gateway = Gateway.options(  # type: ignore[attr-defined]
        num_replicas=fleet.gateway.replicas, ray_actor_options={"num_cpus": fleet.gateway.num_cpus}
    )
    application: Application = gateway.bind(fleet.model_dump(mode="json"), handles, admin_token_sha256)
    return application


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / `serve deploy` (see serve_config.yaml): args `fleet` (a path, optional)
    and `admin_token_sha256` (optional; else the digest of $GRIDSHIFT_ADMIN_TOKEN; with neither, the admin
    API refuses every call)."""
    return build_app_for_serve(load_fleet(args.get("fleet")), args.get("admin_token_sha256"))


def build_app_for_serve(fleet: FleetConfig, admin_token_sha256: str | None) -> Application:
    """build_app for Serve entry points: without a digest, that of the configured token, if any."""
    token = configured_admin_token(fleet.gateway)
    if admin_token_sha256 is None and token:
        admin_token_sha256 = admin_token_digest(token)
    return build_app(fleet, admin_token_sha256)
