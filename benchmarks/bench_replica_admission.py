"""Real-time latency at one regional replica behind a tolerant backlog, with the policy's concurrency knob lowered.

    python -m benchmarks.bench_replica_admission            # 48 tolerant requests of 8 texts, 8 real-time, 3 rounds
    python -m benchmarks.bench_replica_admission --smoke    # 12 tolerant, 3 real-time, 1 round; the shape is checked

One RegionalModel (serve_apps/regional.py) with the real embedding model and one torch thread, driven in this
process: its batching, admission and model thread are the deployment's, without Serve's HTTP and handles in front.
Its knobs are set as the policy sets them under stress (max_concurrency 2, max_batch_size 4). The tolerant backlog
arrives at once; real-time requests of one text then arrive every 250 ms. Two admission orders, alternated round by
round in one process:
- `arrival order`: every request takes a free slot in the order it came (what a replica did before);
- `real-time first`: the replica's ConcurrencyLimit, where a waiting real-time request takes the next free slot.
Printed: real-time latency (median, max) and how long the tolerant backlog took to drain, per order, and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fleet.loaders import load_fleet
from serve_apps.app import regional_model_kwargs
from serve_apps.concurrency_limit import ConcurrencyLimit
from serve_apps.regional import RegionalModel

TOLERANT_TEXTS = tuple(f"A tolerant request about the grid, sentence {k}, long enough to cost a bit." for k in range(8))
REALTIME_TEXT = "Is the grid stressed right now?"
KNOBS = {"max_concurrency": 2, "max_batch_size": 4}
REALTIME_EVERY_S = 0.25


class ArrivalOrder(ConcurrencyLimit):
    """The baseline: the same limit, admitting every request in arrival order whatever its class."""

    @contextlib.asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        del urgent
        async with super().slot(urgent=False):
            yield


def _quiet_outside_serve() -> None:
    # serve.batch reads the replica's max_ongoing_requests from Serve's replica context, only to log a warning;
    # driven outside Serve there is no context, so that check is skipped (the batching itself is unchanged).
    import ray.serve.batching as batching

    def no_check(_queue: object) -> None:
        return None

    batching._BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests = no_check  # type: ignore[method-assign]


async def _round(model: RegionalModel, tolerant: int, realtime: int) -> dict[str, float]:
    latencies: list[float] = []

    async def one_realtime(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        started = time.perf_counter()
        await model.embed([REALTIME_TEXT], "realtime")
        latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    backlog = [asyncio.create_task(model.embed(list(TOLERANT_TEXTS), "tolerant")) for _ in range(tolerant)]
    await asyncio.gather(*(one_realtime(0.1 + REALTIME_EVERY_S * k) for k in range(realtime)))
    await asyncio.gather(*backlog)
    return {
        "realtime_median_ms": statistics.median(latencies) * 1000,
        "realtime_max_ms": max(latencies) * 1000,
        "tolerant_drained_s": time.perf_counter() - began,
    }


async def measure(tolerant: int, realtime: int, rounds: int) -> dict[str, Any]:
    _quiet_outside_serve()
    # The fleet's own arguments, but no control plane to sync with (the knobs are set below) and one torch thread.
    kwargs = regional_model_kwargs(load_fleet(None), "bench", ())
    model = RegionalModel(**{**kwargs, "torch_threads": 1, "knob_refresh_s": None})
    await model.set_knobs(KNOBS)
    limits = {"arrival order": ArrivalOrder, "real-time first": ConcurrencyLimit}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in limits}
    await _round(model, 2, 1)  # untimed warm-up: the first passes at new shapes allocate
    for _ in range(rounds):
        for name, limit in limits.items():
            model._limit = limit(KNOBS["max_concurrency"])
            samples[name].append(await _round(model, tolerant, realtime))
    result: dict[str, Any] = {
        name: {key: round(statistics.median(s[key] for s in runs), 3) for key in runs[0]}
        for name, runs in samples.items()
    }
    before, after = result["arrival order"], result["real-time first"]
    result["ratios"] = {
        "realtime_median": round(after["realtime_median_ms"] / before["realtime_median_ms"], 3),
        "realtime_max": round(after["realtime_max_ms"] / before["realtime_max_ms"], 3),
        "tolerant_drained": round(after["tolerant_drained_s"] / before["tolerant_drained_s"], 3),
    }
    return result


def check_shape(result: dict[str, Any]) -> None:
    """What the smoke run holds itself to: every figure present, finite and positive (not a timing target)."""
    for name in ("arrival order", "real-time first"):
        for key, value in result[name].items():
            if not (isinstance(value, float) and math.isfinite(value) and value > 0):
                raise SystemExit(f"bench_replica_admission: {name} {key} is {value!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tolerant", type=int, default=48, help="tolerant requests (8 texts each) in the backlog")
    parser.add_argument("--realtime", type=int, default=8, help="real-time requests, one every 250 ms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="12 tolerant, 3 real-time, 1 round; the shape is checked")
    args = parser.parse_args(argv)
    tolerant, realtime, rounds = (12, 3, 1) if args.smoke else (args.tolerant, args.realtime, args.rounds)
    result = asyncio.run(measure(tolerant, realtime, rounds))
    print(json.dumps({"benchmark": "replica_admission", "smoke": args.smoke, **result}, indent=2))
    if args.smoke:
        check_shape(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
