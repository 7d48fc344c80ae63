"""Serving sections: model precision, the live knobs of regional apps, how they are placed, and the gateway."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from fleet.base import StrictModel


class Precision(StrEnum):
    """Numeric precision a regional model runs at (lower is cheaper, with a measured quality cost)."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class Knobs(StrictModel):
    """A regional app's live magnitude knobs: changed without restarting replicas."""

    max_batch_size: PositiveInt = Field(16, le=256, description="Largest dynamic batch the model runs.")
    precision: Precision = Field(
        Precision.FP32, description="Model precision for work whose class has no entry in class_precision."
    )
    class_precision: dict[str, Precision] = Field(
        default_factory=dict,
        description="Precision per workload class (e.g. {tolerant: bf16}); the policy degrades classes separately.",
    )
    max_concurrency: PositiveInt = Field(
        32, le=4096, description="Requests a replica admits at once; beyond it callers wait in the queue."
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="How long a partial batch of non-urgent work (every class but real-time) waits for more, ms; "
        "real-time work waits serving.batch_wait_timeout_s.",
    )

    def precision_for(self, workload_class: str) -> Precision:
        return self.class_precision.get(workload_class, self.precision)

    @property
    def work_slots(self) -> int:
        """Requests one replica works on before the rest queue: one full batch, or fewer if concurrency caps it."""
        return min(self.max_batch_size, self.max_concurrency)


class RegionPinning(StrEnum):
    """Whether a region's replicas and batch jobs are kept on that region's nodes (router/placement.py)."""

    AUTO = "auto"  # on the region's nodes when the cluster has any at deploy/launch time, else anywhere
    REQUIRED = "required"  # only on the region's nodes; work waits until one joins (autoscaling clusters)
    OFF = "off"  # anywhere


class Ingress(StrEnum):
    """How HTTP reaches the gateway replica (docs/gateway.md, "Ingress").

    Serve's proxy actor costs a third of a request's CPU here (3.4-3.9 ms direct against 12.3-12.8 through it,
    BENCHMARKS.md), so `gridshift up` starts Ray so that the gateway replica serves the fleet's port itself."""

    AUTO = "auto"  # direct when the Ray cluster runs Serve's direct ingress (gridshift up starts it so), else proxy
    DIRECT = "direct"  # the gateway replica listens on gateway.port itself; refused on a cluster started otherwise
    PROXY = "proxy"  # Serve's HTTP proxy listens on gateway.port and forwards to the gateway replica


class ComputeScheduling(StrEnum):
    """How model work (serving passes, batch and training jobs' tasks) shares a host with the request path
    (rayjobs/priority.py). Ray already starts its workers at nice 15; this lowers their model work further."""

    IDLE = "idle"  # Linux SCHED_IDLE: model work runs on the cycles nothing else wants (others: as nice)
    NICE = "nice"  # nice + serving.compute_nice on the replicas' model threads; jobs keep Ray's priority


class ServingConfig(StrictModel):
    """The model the regional apps serve, and how they are placed."""

    model_import_path: str = Field(
        "serve_apps.embedding:MiniLMEmbedder",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:attribute' of the embedder class or factory (plug in your own model here).",
    )
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the model.")
    model_name: str = Field("all-MiniLM-L6-v2", min_length=1, description="Name reported in responses.")
    knobs: Knobs = Field(default_factory=Knobs, description="Default knobs of every regional app.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0.0, le=1.0, description="How long a partial batch waits for more requests, s."
    )
    replicas_per_region: PositiveInt = Field(
        1, le=64, description="Serve replicas deployed per in-cluster region (capacity_replicas weighs routing)."
    )
    replica_num_cpus: float = Field(
        0.25, gt=0.0, le=64.0, description="CPUs Ray reserves per regional replica (fractional on small hosts)."
    )
    torch_threads: PositiveInt = Field(1, le=64, description="Torch intra-op threads per replica.")
    compute_scheduling: ComputeScheduling = Field(
        ComputeScheduling.IDLE,
        description="idle: each replica's model thread and the workers of gridshift's batch and training jobs run "
        "under Linux SCHED_IDLE, so the request path (HTTP, the gateway, the replicas' event loops, Ray's own "
        "threads) always runs first and rejects at once under overload; model work of every kind shares the rest "
        "evenly. nice: only the replicas' model threads are lowered, by compute_nice (docs/gateway.md).",
    )
    compute_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Nice value added to each replica's model thread under compute_scheduling nice, and where the OS "
        "has no SCHED_IDLE (0: none).",
    )
    region_pinning: RegionPinning = Field(
        RegionPinning.AUTO,
        description="Keep each region's replicas and batch jobs on nodes declaring that region (docs/cluster.md): "
        "auto (when the cluster has such nodes), required (always; wait for them), off.",
    )


class GatewayConfig(StrictModel):
    """The HTTP gateway: where it listens, limits, and how it refreshes and forwards."""

    host: str = Field("127.0.0.1", min_length=1, description="Listen address.")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    replicas: PositiveInt = Field(1, le=64, description="Gateway replicas (more than one needs ingress: proxy).")
    ingress: Ingress = Field(
        Ingress.AUTO,
        description="direct: the gateway replica serves `port` itself (Serve's direct ingress; the cluster must be "
        "started for it, as `gridshift up` does); proxy: Serve's HTTP proxy serves `port`; auto: direct when the "
        "cluster runs direct ingress, else proxy.",
    )
    proxy_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Where Serve's HTTP proxy listens when the gateway serves `port` directly (Serve always starts "
        "one); null: port + 1.",
    )
    num_cpus: float = Field(0.25, gt=0.0, le=64.0, description="CPUs Ray reserves per gateway replica.")
    max_input_items: PositiveInt = Field(256, description="Most strings in one embeddings request (else 413).")
    max_input_chars: PositiveInt = Field(20_000, description="Longest string in characters (else 413).")
    max_latency_budget_ms: PositiveFloat = Field(60_000.0, description="Largest budget a request may ask for.")
    state_refresh_s: float = Field(
        0.2, gt=0.0, le=10.0, description="How often the gateway refreshes its cached control state, s."
    )
    min_forward_timeout_s: PositiveFloat = Field(
        2.0, description="How long a health probe of a region waits for its answer, s."
    )
    forward_timeout_s: PositiveFloat = Field(
        10.0,
        description="How long an admitted request waits for its region before the attempt is cancelled and the "
        "next region tried, s. Admission bounds each region's queue, so a working region answers well within it.",
    )
    admission_queue_factor: float = Field(
        1.0,
        ge=0.0,
        le=16.0,
        description="Requests a region may queue beyond what its replicas work on at once (replicas x the knobs' "
        "work slots: one batch each, or fewer where max_concurrency caps it), as a multiple of that; beyond it the "
        "region is full and the next one is tried.",
    )
    admission_max_wait_s: PositiveFloat = Field(
        5.0,
        description="The longest tolerant work is admitted to wait at a region for the items already in flight there, "
        "at the pace the region delivers while busy (as this gateway observes it; the calibrated cost until it has "
        "seen enough); beyond it the region is full for tolerant work. Bounds the accepted requests' wait in time, "
        "where the admission bound counts requests of any size. Below forward_timeout_s.",
    )
    realtime_reserve: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of each region's admission bound only real-time work may use, so it is admitted first.",
    )
    unhealthy_after_failures: PositiveInt = Field(
        2, description="Consecutive forward failures that mark a region unhealthy until a probe succeeds."
    )
    probe_interval_s: PositiveFloat = Field(
        1.0, description="How often an unhealthy region, and every remote (endpoint_url) region, is probed, s."
    )
    wan_emulation: bool = Field(
        False,
        description="Add the real origin->region round-trip time to each forward, so budgets are real end to "
        "end when every region runs on one machine. Off in production.",
    )
    admin_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token for /v1/admin; null: read GRIDSHIFT_ADMIN_TOKEN (or `gridshift up` makes one).",
    )

    @model_validator(mode="after")
    def _ports_apart(self) -> GatewayConfig:
        if self.proxy_port is not None and self.proxy_port == self.port:
            raise ValueError(f"proxy_port: {self.proxy_port} is the gateway's own port; give Serve's proxy another")
        if self.port == 65535 and self.proxy_port is None and self.ingress is not Ingress.PROXY:
            raise ValueError("proxy_port: port 65535 leaves no port + 1 for Serve's proxy; set proxy_port")
        if self.ingress is Ingress.DIRECT and self.replicas > 1:
            raise ValueError(
                f"replicas: {self.replicas} gateway replicas cannot share gateway.port under ingress: direct "
                "(each replica serves a port of its own); use ingress: proxy or one replica"
            )
        return self

    @model_validator(mode="after")
    def _wait_below_timeout(self) -> GatewayConfig:
        if self.admission_max_wait_s >= self.forward_timeout_s:
            raise ValueError(
                f"admission_max_wait_s: {self.admission_max_wait_s:g} s must be below forward_timeout_s "
                f"({self.forward_timeout_s:g} s), or admitted work would time out in the queue it was admitted to"
            )
        return self

    @property
    def internal_proxy_port(self) -> int:
        """Serve's proxy's port when the gateway replica serves `port` itself."""
        return self.proxy_port if self.proxy_port is not None else self.port + 1
