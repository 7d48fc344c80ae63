"""Per-replica metrics through Ray's metrics API: what a gateway or regional replica observes as it serves (latency by
region and reason, failovers, shifted work, items, batch sizes, model time). Ray exports them with the replica's own
labels (Serve adds `deployment`, `replica`, `application`), so counters from several replicas never look like resets.
Outside a Ray worker the metrics record nothing, so unit tests build replicas without Ray."""

from __future__ import annotations

from typing import Protocol, cast

from router.routing import RouteDecision
from serve_apps.metric_catalogue import spec

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)


class GatewayObserver(Protocol):
    """What a gateway replica reports as it serves; GatewayCore calls these at the moment each thing happens."""

    def served(self, region: str, decision: RouteDecision, workload_class: str, seconds: float) -> None: ...

    def failed_over(self, region: str) -> None: ...

    def shifted(self, origin: str, region: str, items: int) -> None: ...

    def unserved(self, origin: str, workload_class: str) -> None: ...


def _help(name: str) -> str:
    entry = spec(name)
    return f"{entry.help} Unit: {entry.unit}."


def _tags(name: str) -> tuple[str]:
    # Ray annotates tag_keys as a one-element tuple; it takes any tuple of names.
    return cast("tuple[str]", spec(name).labels)


class GatewayMetrics:
    """Ray counters and histograms of one gateway replica."""

    def __init__(self) -> None:
        from ray.serve.metrics import Counter, Histogram

        def counter(name: str) -> Counter:
            return Counter(name, description=_help(name), tag_keys=_tags(name))

        name = "gridshift_gateway_request_duration_seconds"
        self._duration = Histogram(
            name, description=_help(name), boundaries=list(LATENCY_BUCKETS_S), tag_keys=_tags(name)
        )
        self._unserved = counter("gridshift_gateway_unserved_requests_total")
        self._failovers = counter("gridshift_gateway_failovers_total")
        self._shifted = counter("gridshift_gateway_shifted_items_total")

    def served(self, region: str, decision: RouteDecision, workload_class: str, seconds: float) -> None:
        # The reason as X-Gridshift-Reason gives it: a fallback's answer is marked as a failover.
        reason = decision.reason.value if region == decision.region else f"failover:{decision.reason.value}"
        self._duration.observe(seconds, {"region": region, "reason": reason, "workload_class": workload_class})

    def failed_over(self, region: str) -> None:
        self._failovers.inc(1.0, {"region": region})

    def shifted(self, origin: str, region: str, items: int) -> None:
        self._shifted.inc(float(items), {"origin": origin, "region": region})

    def unserved(self, origin: str, workload_class: str) -> None:
        self._unserved.inc(1.0, {"origin": origin, "workload_class": workload_class})


class RegionalMetrics:
    """Ray counters and histograms of one regional replica."""

    def __init__(self, region: str) -> None:
        from ray.serve.metrics import Counter, Histogram

        self._region = region
        name = "gridshift_replica_items_total"
        self._items = Counter(name, description=_help(name), tag_keys=_tags(name))
        name = "gridshift_replica_batch_requests"
        self._batch = Histogram(name, description=_help(name), boundaries=list(BATCH_BUCKETS), tag_keys=_tags(name))
        name = "gridshift_replica_inference_seconds"
        self._inference = Histogram(
            name, description=_help(name), boundaries=list(LATENCY_BUCKETS_S), tag_keys=_tags(name)
        )

    def batch(self, requests: int) -> None:
        self._batch.observe(float(requests), {"region": self._region})

    def inference(self, precision: str, items: int, seconds: float) -> None:
        tags = {"region": self._region, "precision": precision}
        self._items.inc(float(items), tags)
        self._inference.observe(seconds, tags)
