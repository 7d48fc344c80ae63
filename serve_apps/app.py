"""Serve application: the gateway ingress deployment and one regional deployment per in-cluster region."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve import Application

from batch.runner import validate_spec
from batch.spec import BatchJobSpec
from batch.submit import RayJobState, cluster_nodes, ray_jobs, submit_job
from fleet.config import FleetConfig
from fleet.loaders import load_fleet, load_rtt_matrix, parse_fleet
from fleet.regions import RegionConfig
from fleet.routing import RoutingMode
from fleet.serving import ServingConfig
from policies.actors.control import control_client
from policies.actors.openadr import get_or_create_openadr_actor
from policies.actors.policy import get_or_create_policy_actor
from policies.calibration import load_calibration
from policies.ladder import serving_precisions
from router.placement import ClusterNode, region_placement
from serve_apps.admin_token import admin_token_digest, configured_admin_token
from serve_apps.backends import HandleBackend, HttpBackend, RegionBackend
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from serve_apps.regional import RegionalApp
from serve_apps.training_api import RayJobsTrainingLauncher

APP_NAME = "gridshift"


class RayJobsLauncher:
    """Submits batch jobs as Ray Jobs to this cluster's Jobs API (they show in the dashboard and `ray job logs`)."""

    def __init__(self, fleet: FleetConfig) -> None:
        self._fleet = fleet

    async def launch(self, spec: BatchJobSpec) -> None:
        # Validation reads the input's listing and imports the pipeline; submission is an HTTP call: off the loop.
        await asyncio.to_thread(self._submit, spec)

    def _submit(self, spec: BatchJobSpec) -> None:
        validate_spec(spec)
        submit_job(spec, self._fleet, nodes=cluster_nodes())

    async def ray_jobs(self) -> list[RayJobState]:
        return await asyncio.to_thread(ray_jobs)


@serve.deployment(max_ongoing_requests=1024)
@serve.ingress()
class Gateway:
    """The HTTP entry point. Its routes live in serve_apps.http_api; this class wires Ray into them."""

    def __init__(
        self,
        fleet_data: dict[str, Any],
        region_handles: dict[str, Any],
        admin_token_sha256: str | None,
        warm_precisions: tuple[str, ...] = (),
    ) -> None:
        fleet = parse_fleet(fleet_data, source="gateway fleet")
        backends: dict[str, RegionBackend] = {
            region.name: HttpBackend(region.name, region.endpoint_url)
            if region.endpoint_url
            else HandleBackend(region.name, region_handles[region.name])
            for region in fleet.regions
        }
        control = control_client(fleet)
        # Started (or found) here, so `serve run serve_config.yaml` gets them as `gridshift up` does.
        if fleet.policy.enabled:
            get_or_create_policy_actor(fleet)
        if fleet.openadr is not None:
            get_or_create_openadr_actor(fleet)
        self.core = GatewayCore(
            fleet,
            load_rtt_matrix(fleet.latency),
            control,
            backends,
            batch_launcher=RayJobsLauncher(fleet),
            warm_precisions=warm_precisions,
        )
        self._admin_token_sha256 = admin_token_sha256

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(
            self.core, self._admin_token_sha256, training_launcher=RayJobsTrainingLauncher(self.core.fleet)
        )


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


def regional_model_kwargs(fleet: FleetConfig, region: str, warm_precisions: tuple[str, ...]) -> dict[str, Any]:
    """RegionalModel's arguments for one region of the fleet (the deployment binds them; a benchmark that drives
    the model in-process starts from them too)."""
    serving = fleet.serving
    return {
        "region": region,
        "model_import_path": serving.model_import_path,
        "model_kwargs": serving.model_kwargs,
        "model_name": serving.model_name,
        "batch_wait_timeout_s": serving.batch_wait_timeout_s,
        "torch_threads": serving.torch_threads,
        "knob_refresh_s": fleet.policy.knob_refresh_s,
        "fallback_after_s": fleet.policy.fallback_after_s,
        "urgent_classes": urgent_classes(fleet),
        "warm_precisions": warm_precisions,
        "compute_scheduling": serving.compute_scheduling,
        "compute_nice": serving.compute_nice,
    }


def build_app(
    fleet: FleetConfig, admin_token_sha256: str | None, nodes: Sequence[ClusterNode] | None = None
) -> Application:
    """The whole fleet as one Serve application: regional deployments bound into the gateway.
    `nodes` defaults to the connected cluster's (placement is decided once, at build time)."""
    if nodes is None:
        nodes = cluster_nodes()
    serving = fleet.serving
    warm = tuple(
        p.value
        for p in serving_precisions(fleet.policy, serving.knobs, load_calibration(fleet.policy.calibration_file))
    )
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
        handles[region.name] = deployment.bind(**regional_model_kwargs(fleet, region.name, warm))
    gateway = Gateway.options(  # type: ignore[attr-defined]
        num_replicas=fleet.gateway.replicas, ray_actor_options={"num_cpus": fleet.gateway.num_cpus}
    )
    application: Application = gateway.bind(fleet.model_dump(mode="json"), handles, admin_token_sha256, warm)
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
