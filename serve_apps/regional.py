"""Regional model app: one Ray Serve deployment per region serving embeddings with dynamic batching and live knobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve

from fleet.serving import ComputeScheduling, Knobs, Precision
from policies.calibration import costlier_than_fp32
from policies.control_api import ControlApi
from policies.knob_leases import KnobsLease, KnobSource
from policies.load import ReplicaReport
from rayjobs.priority import background_thread
from serve_apps.backends import RegionalResult
from serve_apps.concurrency_limit import ConcurrencyLimit
from serve_apps.nvml import GpuPowerMeter, open_gpu_power
from serve_apps.replica_metrics import RegionalMetrics

logger = logging.getLogger("gridshift.regional")

# What a replica times each warmed precision on at start (short and longer sentences, as requests mix them), and
# how many times: the least of the rounds is the probe's cost, robust to a round that other work interrupted.
PROBE_TEXTS = (
    "The grid operator called a demand response event for this evening.",
    "Batch jobs wait for clean hours; training pauses at a checkpoint; inference moves to the region with headroom.",
    "Embeddings",
    "A flexible data centre can shed load within minutes when the grid is stressed.",
)
PROBE_ROUNDS = 2

# Serve's own cap on requests queued at one replica; the live concurrency knob admits fewer at once.
MAX_ONGOING_REQUESTS = 512

KnobSync = Callable[[ReplicaReport], Awaitable[KnobsLease]]


def control_actor_sync(refresh_s: float) -> KnobSync:
    """Sync with the cluster's control actor, found by name on first use (so a replica starts without it)."""
    from policies.actors.control import control_client

    control = control_client()

    async def sync(report: ReplicaReport) -> KnobsLease:
        return await asyncio.wait_for(control.call(ControlApi.regional_sync, report), max(4 * refresh_s, 1.0))

    return sync


class RegionalModel:
    """The model behind one region's deployment.

    Knobs change live, without a restart. The knobs in force come from the control plane (the policy's decision,
    an operator's pin, or the fleet's defaults): every `knob_refresh_s` each replica reports its load and takes
    the knobs back. If it cannot reach the control plane for `fallback_after_s`, it returns to its configured
    knobs (Serve's user_config, or `set_knobs`), the safe defaults, rather than stay degraded.
    """

    def __init__(
        self,
        region: str,
        model_import_path: str,
        model_kwargs: dict[str, Any],
        model_name: str,
        batch_wait_timeout_s: float,
        torch_threads: int,
        knob_refresh_s: float | None = None,
        fallback_after_s: float = 10.0,
        knob_sync: KnobSync | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
        urgent_classes: tuple[str, ...] = ("realtime",),
        warm_precisions: tuple[str, ...] = (),
        compute_scheduling: ComputeScheduling = ComputeScheduling.NICE,
        compute_nice: int = 0,
    ) -> None:
        # Imported here so that importing this module (e.g. to build the app) does not load torch.
        from serve_apps.embedding import load_embedder

        self.region = region
        self.model_name = model_name
        self.replica_id = f"{region}-{uuid.uuid4().hex[:8]}"
        # Every model pass runs on this one thread, as background work (serving.compute_scheduling): on a host the
        # model saturates, the request path still runs first, so admission rejects at once instead of after the
        # backlog.
        self._model_thread = ThreadPoolExecutor(
            1,
            thread_name_prefix=f"model-{region}",
            initializer=background_thread,
            initargs=(compute_scheduling, compute_nice),
        )
        self._embedder = self._model_thread.submit(
            load_embedder, model_import_path, {**model_kwargs, "torch_threads": torch_threads}
        ).result()
        # Serve sends no traffic until the constructor returns: every precision the policy may ask for is built and
        # run once here (on the model thread, so torch's thread pool starts there), so readiness (the gateway's
        # /readyz) means the first request pays for none of it.
        for precision in warm_precisions:
            self._model_thread.submit(self._embedder.embed, ["warm-up"], Precision(precision)).result()
        self.warmed: tuple[str, ...] = tuple(warm_precisions)
        # The calibration the policy reads was measured on some host; a lower precision can cost more on this one
        # (bf16 without the CPU's bf16 instructions). Those are served as fp32 here, and said so.
        self.served_as_fp32 = self._probe_precisions(warm_precisions)
        self._configured = Knobs()  # what runs without a lease: user_config or set_knobs
        self._knobs = self._configured
        self.knob_source: str = KnobSource.CONFIGURED
        self._limit = ConcurrencyLimit(self._knobs.max_concurrency)
        self._batch_wait_timeout_s = batch_wait_timeout_s
        self._urgent_classes = frozenset(urgent_classes)
        self._model_lock = asyncio.Lock()
        self._monotonic_s = monotonic_s
        self._fallback_after_s = fallback_after_s
        self._last_lease_s: float | None = None
        self._served = 0
        self._items = 0
        self._batches = 0
        self._batched_requests = 0
        self._busy_by_class: dict[str, float] = {}
        self._busy_by_precision: dict[str, float] = {}
        self._started_s = time.time()
        self._gpu: GpuPowerMeter | None = open_gpu_power()
        self._metrics = RegionalMetrics(region)  # per-replica counters, exported by Ray
        self._apply_batching()
        self._sync_task: asyncio.Task[None] | None = None
        self._knob_sync = knob_sync
        if knob_refresh_s is not None:
            self._knob_sync = knob_sync or control_actor_sync(knob_refresh_s)
            # Serve runs the constructor on the replica's event loop, so the loop is there to run the sync on.
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_forever(knob_refresh_s))

    def _probe_precisions(self, precisions: tuple[str, ...]) -> frozenset[Precision]:
        """Time the same texts at each warmed precision (the model thread's CPU, the least of PROBE_ROUNDS) and return
        those that cost more than fp32 on this host (policies.calibration.costlier_than_fp32)."""
        probed = {Precision(p) for p in precisions} | {Precision.FP32}
        if len(probed) < 2:
            return frozenset()
        cpu_s = {
            precision: min(
                self._model_thread.submit(self._timed_embed, list(PROBE_TEXTS), precision).result()[1]
                for _ in range(PROBE_ROUNDS)
            )
            for precision in sorted(probed)
        }
        costlier = costlier_than_fp32(cpu_s)
        for precision in sorted(costlier):
            logger.warning(
                "%s: %s costs %.1fx fp32 on this host (%.0f against %.0f ms CPU for %d texts), so it is served as "
                "fp32 (cheaper, and it meets every quality floor). Measure this host's calibration with `python -m "
                "benchmarks.bench_precision --write-calibration PATH` and set policy.calibration_file to it.",
                self.region,
                precision.value,
                cpu_s[precision] / cpu_s[Precision.FP32],
                cpu_s[precision] * 1000,
                cpu_s[Precision.FP32] * 1000,
                len(PROBE_TEXTS),
            )
        return costlier

    def _precision_for(self, workload_class: str) -> Precision:
        asked = self._knobs.precision_for(workload_class)
        return Precision.FP32 if asked in self.served_as_fp32 else asked

    async def readiness(self) -> list[str]:
        """The precisions this replica has warmed up. Any answer at all means the replica is constructed."""
        return list(self.warmed)

    def _apply_batching(self) -> None:
        # serve.batch wraps the methods in objects with these setters; their type stubs do not declare them.
        # Urgent (real-time) work waits the deployment's short timeout; other work waits the knob's, which the
        # policy lengthens under stress so batches fill and each item costs less (docs/policy.md).
        for queue, wait_s in (
            (self._embed_batch, self._batch_wait_timeout_s),
            (self._embed_batch_patient, self._knobs.batch_wait_ms / 1000.0),
        ):
            queue.set_max_batch_size(self._knobs.max_batch_size)  # type: ignore[attr-defined]
            queue.set_batch_wait_timeout_s(wait_s)  # type: ignore[attr-defined]

    async def _apply(self, knobs: Knobs, source: str) -> None:
        self.knob_source = source
        if knobs == self._knobs:
            return
        self._knobs = knobs
        self._apply_batching()
        await self._limit.set_limit(knobs.max_concurrency)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await self.set_knobs(user_config)

    async def set_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set the configured knobs (validated) and apply them now; returns them. No restart: the next batch uses
        them. While the control plane answers, its knobs replace these at the next sync."""
        self._configured = Knobs.model_validate(knobs)
        await self._apply(self._configured, KnobSource.CONFIGURED)
        return self._configured.model_dump(mode="json")

    # Control-plane sync ------------------------------------------------------------------------------------

    async def sync_once(self) -> None:
        """Report load, take the knobs in force; after `fallback_after_s` without an answer, the configured ones."""
        if self._knob_sync is None:
            return
        try:
            lease = await self._knob_sync(self.report())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # control actor restarting or gone: keep the lease until it expires
            silent_s = None if self._last_lease_s is None else self._monotonic_s() - self._last_lease_s
            if silent_s is not None and silent_s > self._fallback_after_s and self.knob_source != KnobSource.CONFIGURED:
                logger.warning(
                    "%s: no knobs from the control plane for %.0f s (%s): back to configured knobs",
                    self.replica_id,
                    silent_s,
                    error,
                )
                await self._apply(self._configured, KnobSource.CONFIGURED)
            return
        self._last_lease_s = self._monotonic_s()
        await self._apply(lease.knobs, lease.source)

    async def _sync_forever(self, refresh_s: float) -> None:
        while True:
            await self.sync_once()
            await asyncio.sleep(refresh_s)

    async def stop_sync(self) -> None:
        """Stop the background sync (tests; a replica's process ends with its loop otherwise)."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            self._sync_task = None

    # Serving --------------------------------------------------------------------------------------------------

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, requests: list[tuple[list[str], str]]) -> list[tuple[npt.NDArray[np.float32], str]]:
        return await self.run_batch(requests)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _embed_batch_patient(
        self, requests: list[tuple[list[str], str]]
    ) -> list[tuple[npt.NDArray[np.float32], str]]:
        return await self.run_batch(requests)

    async def run_batch(self, requests: list[tuple[list[str], str]]) -> list[tuple[npt.NDArray[np.float32], str]]:
        """One dynamic batch of (texts, workload class) requests. Classes may run at different precisions, so the
        batch runs one model pass per precision present (a mixed batch costs at most one extra pass)."""
        groups: dict[Precision, list[int]] = {}
        for index, (_, workload_class) in enumerate(requests):
            groups.setdefault(self._precision_for(workload_class), []).append(index)
        results: dict[int, tuple[npt.NDArray[np.float32], str]] = {}
        for precision, indices in groups.items():
            texts = [text for i in indices for text in requests[i][0]]
            # The model runs on the model thread so the replica's event loop keeps admitting requests; one pass at a
            # time (the urgent and patient queues both land here), as the replica has one torch thread to spend.
            async with self._model_lock:
                vectors, cpu_s = await asyncio.get_running_loop().run_in_executor(
                    self._model_thread, self._timed_embed, texts, precision
                )
            self._metrics.inference(precision.value, len(texts), cpu_s)
            offset = 0
            for i in indices:
                count = len(requests[i][0])
                results[i] = (vectors[offset : offset + count], precision.value)
                offset += count
                workload_class = requests[i][1]
                share = cpu_s * count / max(len(texts), 1)
                self._busy_by_class[workload_class] = self._busy_by_class.get(workload_class, 0.0) + share
            self._busy_by_precision[precision.value] = self._busy_by_precision.get(precision.value, 0.0) + cpu_s
        self._batches += 1
        self._batched_requests += len(requests)
        self._metrics.batch(len(requests))
        return [results[i] for i in range(len(requests))]

    def _timed_embed(self, texts: list[str], precision: Precision) -> tuple[npt.NDArray[np.float32], float]:
        # The CPU time of this thread: with one torch thread the model runs here, so this is the work's own cost
        # (what energy follows), not wall time inflated by whatever else shares the machine.
        started = time.thread_time()
        vectors = self._embedder.embed(texts, precision)
        return vectors.astype(np.float32, copy=False), time.thread_time() - started

    async def embed(self, texts: list[str], workload_class: str = "tolerant") -> RegionalResult:
        urgent = workload_class in self._urgent_classes
        async with self._limit.slot(urgent=urgent):
            queue = self._embed_batch if urgent else self._embed_batch_patient
            vectors, precision = await queue((texts, workload_class))
        self._served += 1
        self._items += len(texts)
        return RegionalResult(
            region=self.region,
            embeddings=vectors,
            precision=precision,
            prompt_tokens=self._embedder.count_tokens(texts),
            model=self.model_name,
        )

    # Load ---------------------------------------------------------------------------------------------------------

    def report(self) -> ReplicaReport:
        """Cumulative counters and gauges now, for the control plane's load view and the power model."""
        gpu = self._gpu.read() if self._gpu is not None else None
        return ReplicaReport(
            region=self.region,
            replica_id=self.replica_id,
            wall_s=time.time(),
            requests=self._served,
            items=self._items,
            batches=self._batches,
            batched_requests=self._batched_requests,
            busy_cpu_s_by_class=dict(self._busy_by_class),
            busy_cpu_s_by_precision=dict(self._busy_by_precision),
            queued=self._limit.waiting,
            in_flight=self._limit.active,
            gpu_power_w=None if gpu is None else gpu.power_w,
            gpu_max_power_w=None if gpu is None else gpu.limit_w,
            gpu_idle_power_w=None if gpu is None else gpu.idle_w,
        )

    def stats(self) -> dict[str, Any]:
        """Load and knobs of this replica, for operators and tests."""
        return {
            "region": self.region,
            "replica_id": self.replica_id,
            "pid": os.getpid(),
            "knobs": self._knobs.model_dump(mode="json"),
            "knob_source": self.knob_source,
            "configured_knobs": self._configured.model_dump(mode="json"),
            "in_flight": self._limit.active,
            "queued": self._limit.waiting,
            "served": self._served,
            "items": self._items,
            "batches": self._batches,
            "mean_batch_occupancy": (self._batched_requests / self._batches) if self._batches else 0.0,
            "busy_cpu_s_by_precision": dict(self._busy_by_precision),
            "served_as_fp32": sorted(p.value for p in self.served_as_fp32),  # costlier than fp32 on this host
            "uptime_s": time.time() - self._started_s,
        }


RegionalApp = serve.deployment(max_ongoing_requests=MAX_ONGOING_REQUESTS, health_check_period_s=2)(RegionalModel)
