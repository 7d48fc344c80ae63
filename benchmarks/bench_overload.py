"""Serving under offered load: the real Azure LLM arrival trace replayed open-loop at multiples of the fleet's capacity.

    python -m benchmarks.bench_overload                 # capacity, then 0.5x 0.8x 1x 1.5x 2x, then 2x in an emergency
    python -m benchmarks.bench_overload --smoke         # toy durations, what CI runs: the output's shape is checked
    python -m benchmarks.bench_overload --ingress proxy # through Serve's proxy actor (before: direct, as gridshift up)
    python -m benchmarks.bench_overload --compute nice  # model threads niced, not SCHED_IDLE (before: idle)
    python -m benchmarks.bench_overload --max-wait-s 9.9 # admission by count only (before the wait bound)

One local Ray cluster with the default fleet deployed as `gridshift up` does (policy and knob leases on), replaying
the heat-wave peak in real time (us-west-1 at stress 3). Requests come from `../shared/data/workloads/` (one to
eight sentences each from their context tokens, 30 % real-time, origins spread over the four regions), sent at the
trace's own arrival gaps, scaled so that each level offers its multiple of capacity over its own window
(loadtests.azure_trace.schedule_window), whatever the answers do. Capacity is the best throughput of closed loops
of 32 and 64 clients sending the same requests (answers completed within the probe, per second); the unloaded p99
comes from one client at a time. Per level: goodput (answers completed within the level's window, per second), answers
503 "overloaded" (admission: every region that may serve was full) with the time to that answer, other failures,
p50/p99 of accepted requests, and tolerant requests served in a region under a grid emergency (stress 3) while a
calm region was up; and the p99 an ideal queue gives the same arrivals at the measured capacity (two cores, first
come first served, no overhead: benchmarks.ideal_queue), the queueing the trace's bursts cause by themselves.
The last run posts a level-3 DR event on us-west-2 (the calm region tolerant work prefers) and
offers 2x capacity: nothing tolerant may then be served in us-west-1 or us-west-2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.gateway_paths import bench_fleet
from benchmarks.ideal_queue import ideal_latencies_s, item_seconds
from benchmarks.overload_traffic import (
    closed_loop,
    completed_within,
    first_sent_s,
    open_loop,
    summarize,
)
from benchmarks.process_cpu import cpu_by_role, pin_models, share_of, used
from fleet.serving import ComputeScheduling, GatewayConfig, Ingress
from loadtests.azure_trace import TRACE_FILE, TraceRequest, load_trace_requests, schedule_window

EMERGENCY = "us-west-1"  # CISO at stress 3 at the replayed peak
EVENT_REGION = "us-west-2"
CAPACITY_CLIENTS = (32, 64)  # closed loops probed for capacity, the best taken
ADMIN_TOKEN = "bench-overload-admin-token-0123456789"
PORT = 18400
CLUSTER_CPUS = 2  # the local Ray cluster's CPUs, and so the ideal queue's cores


class BenchError(RuntimeError):
    """The run could not measure what it claims; the message says why."""


async def _admin(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response,
    ):
        answer: dict[str, Any] = await response.json()
        if response.status >= 300:
            raise BenchError(f"{method} {path}: HTTP {response.status} {answer}")
        return answer


async def measure(args: argparse.Namespace, base: str, requests: list[TraceRequest]) -> dict[str, Any]:
    url = base + "/v1/embeddings"
    unloaded = await closed_loop(url, requests, 1, args.probe_s)
    unloaded_p99 = summarize("unloaded", 0.0, 1.0, args.probe_s, unloaded, set()).p99_ms
    # Capacity: the best of closed loops at growing concurrency. Deeper queues mean larger batches, so 32 clients
    # alone could leave the fleet short of its most (2x then served more than "capacity" on a quiet machine).
    capacity, best, probes = 0.0, CAPACITY_CLIENTS[0], {}
    for clients in CAPACITY_CLIENTS:
        cpu_before = cpu_by_role()
        answers = await closed_loop(url, requests, clients, args.probe_s)
        cpu = share_of(used(cpu_before, cpu_by_role()))
        done = [a for a in answers if a.status == 200]
        # Answers completed within the probe, per second: the requests still in flight at its end (one latency's
        # worth) complete after it, and counting them too overstated capacity by about a tenth.
        rate = completed_within(done, first_sent_s(answers), args.probe_s) / args.probe_s
        probes[clients] = {"per_s": rate, "overloaded": sum(a.overloaded for a in answers)}
        if rate > capacity:
            capacity, best, capacity_cpu, served = rate, clients, cpu, done
    if capacity <= 0:
        raise BenchError("the fleet served nothing in the capacity probe")
    model_cores = args.model_cores or CLUSTER_CPUS  # the cores the model's work can use
    item_s = item_seconds(capacity, statistics.mean(a.sentences for a in served), model_cores)

    def ideal(plan: list[TraceRequest]) -> list[float]:
        return ideal_latencies_s([(r.at_s, r.sentences) for r in plan], item_s, model_cores)

    levels = []
    for offset, multiple in enumerate(args.multiples):
        plan = schedule_window(requests, multiple * capacity, args.level_s, offset=offset * 997)
        cpu_before = cpu_by_role()
        answers = await open_loop(url, plan, seed=offset)
        cpu = used(cpu_before, cpu_by_role())
        label = f"{multiple:g}x"
        levels.append(summarize(label, multiple, capacity, args.level_s, answers, {EMERGENCY}, ideal(plan), cpu))
        await asyncio.sleep(args.settle_s)  # let queues drain so levels do not leak into each other
    event = await _admin(base, "POST", "/v1/admin/events", {"region": EVENT_REGION, "level": 3})
    try:
        await asyncio.sleep(1.0)  # every gateway replica refreshes its state within this
        plan = schedule_window(requests, 2.0 * capacity, args.level_s, offset=7919)
        cpu_before = cpu_by_role()
        answers = await open_loop(url, plan, seed=99)
        cpu = used(cpu_before, cpu_by_role())
        avoid = {EMERGENCY, EVENT_REGION}
        levels.append(summarize("2x, level-3 event", 2.0, capacity, args.level_s, answers, avoid, ideal(plan), cpu))
    finally:
        await _admin(base, "DELETE", f"/v1/admin/events/{event['event']['event_id']}")
    return {
        "capacity_per_s": capacity,
        "capacity_cpu_share": capacity_cpu,
        # Rejected clients wait their Retry-After: many rejections here would understate capacity.
        "capacity_overloaded": probes[best]["overloaded"],
        "capacity_probes": probes,  # clients -> throughput and rejections of each closed loop
        "unloaded_p99_ms": unloaded_p99,
        "levels": [asdict(level) for level in levels],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ray import serve

    from policies.actors.control import get_or_create_control_actor
    from serve_apps.up import deploy, start_local_ray

    requests = load_trace_requests(Path(args.trace))
    fleet = bench_fleet(args.port, args.fleet)
    fleet = fleet.model_copy(
        update={
            "gateway": fleet.gateway.model_copy(
                update={"ingress": Ingress(args.ingress), "admission_max_wait_s": args.max_wait_s}
            ),
            "serving": fleet.serving.model_copy(update={"compute_scheduling": ComputeScheduling(args.compute)}),
        }
    )
    print("bench_overload: starting a local Ray cluster and deploying the fleet ...", file=sys.stderr, flush=True)
    start_local_ray(CLUSTER_CPUS, dashboard=False, fleet=fleet)
    try:
        get_or_create_control_actor(fleet)
        deploy(fleet, ADMIN_TOKEN, blocking_timeout_s=300)
        if args.model_cores:
            models, others = pin_models(args.model_cores)
            print(
                f"bench_overload: model replicas on cores {sorted(models)}, the rest on {sorted(others)}",
                file=sys.stderr,
            )
        started = time.perf_counter()
        report = asyncio.run(measure(args, f"http://127.0.0.1:{args.port}", requests))
        report["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        import ray

        with contextlib.suppress(Exception):
            serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    report.update(
        schema="gridshift.bench_overload/v1",
        smoke=args.smoke,
        trace=args.trace,
        level_s=args.level_s,
        model_cores=args.model_cores or None,
        ingress=args.ingress,
        compute_scheduling=args.compute,
        admission_max_wait_s=args.max_wait_s,
        fleet=args.fleet,
    )
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"capacity {report['capacity_per_s']:.1f} requests/s (best closed loop of {list(CAPACITY_CLIENTS)} clients, "
        f"{report['capacity_overloaded']} rejected); unloaded p99 "
        f"{report['unloaded_p99_ms']:.0f} ms; {report['level_s']:g} s per level; ingress {report['ingress']}, "
        f"model work {report['compute_scheduling']}, admission wait bound {report['admission_max_wait_s']:g} s; "
        f"model replicas pinned to {report['model_cores'] or 'no'} "
        f"core(s); CPU at capacity: "
        f"{_cpu_text(report['capacity_cpu_share'])}",
        "",
        "| offered | req/s | goodput/s (with drain) | × capacity | accepted | 503 overloaded | reject p50 / max ms "
        "| other failures | p50 ms | p99 ms | ideal-queue p99 ms | tolerant in emergency "
        "| CPU: model / gateway+proxy / load generator | gateway+proxy CPU ms per request |",
        "|--|--:|--:|--:|--:|--:|--|--:|--:|--:|--:|--:|--|--:|",
    ]
    for level in report["levels"]:
        rejects = (
            f"{level['reject_p50_ms']:.0f} / {level['reject_max_ms']:.0f}"
            if level["reject_p50_ms"] is not None
            else "-"
        )
        lines.append(
            f"| {level['label']} | {level['offered_per_s']:.1f} | {level['goodput_per_s']:.1f} "
            f"({level['goodput_with_drain_per_s']:.1f}) | "
            f"{level['goodput_of_capacity']:.2f} | {level['accepted']} | {level['overloaded']} | {rejects} | "
            f"{level['other_failures']} | {level['p50_ms']:.0f} | {level['p99_ms']:.0f} | "
            f"{level['ideal_p99_ms']:.0f} | {level['emergency_spill']} | {_cpu_text(level['cpu_share'])} | "
            f"{level['ingress_cpu_ms_per_request']:.1f} |"
        )
    return "\n".join(lines)


def _cpu_text(share: dict[str, float]) -> str:
    if not share:
        return "-"
    ingress = share.get("gateway", 0.0) + share.get("proxy", 0.0)
    return f"{share.get('model', 0.0):.0%} / {ingress:.0%} / {share.get('load generator', 0.0):.0%}"


def check_shape(report: dict[str, Any], levels: int) -> None:
    """What the smoke run holds itself to: a row per level plus the emergency run, a positive capacity, every count
    consistent (not the targets: toy durations cannot measure them)."""
    if not report["capacity_per_s"] > 0 or len(report["levels"]) != levels + 1:
        raise BenchError(f"capacity {report['capacity_per_s']}, {len(report['levels'])} levels for {levels} + 1")
    for level in report["levels"]:
        if level["accepted"] < 1 or min(level["overloaded"], level["other_failures"]) < 0:
            raise BenchError(f"{level['label']}: nothing accepted or negative counts: {level}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_trace = Path(__file__).resolve().parents[2] / "shared" / "data" / "workloads" / TRACE_FILE
    parser.add_argument("--trace", default=str(default_trace), help="the Azure LLM conversation trace (csv.gz)")
    parser.add_argument("--multiples", default="0.5,0.8,1,1.5,2", help="offered load, multiples of capacity")
    parser.add_argument("--level-s", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--probe-s", type=float, default=10.0, help="seconds of each capacity probe")
    parser.add_argument("--settle-s", type=float, default=3.0, help="pause between levels, s")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged fleet); replayed at the heat-wave peak")
    parser.add_argument(
        "--model-cores",
        type=int,
        default=0,
        help="pin the model replicas to this many cores and everything else (proxy, gateway, load generator) to the "
        "rest: a one-machine stand-in for ingress with cores of its own (default 0: all share every core)",
    )
    parser.add_argument(
        "--ingress",
        choices=[Ingress.DIRECT.value, Ingress.PROXY.value],
        default=Ingress.DIRECT.value,
        help="direct (default, as gridshift up serves): the gateway replica serves the port itself; proxy: through "
        "Serve's proxy actor, the path before direct ingress (run both for the comparison)",
    )
    parser.add_argument(
        "--compute",
        choices=[ComputeScheduling.IDLE.value, ComputeScheduling.NICE.value],
        default=ComputeScheduling.IDLE.value,
        help="how the replicas' model threads yield to the request path (serving.compute_scheduling): idle (default, "
        "as gridshift up) or nice (before; run both for the comparison)",
    )
    parser.add_argument(
        "--max-wait-s",
        type=float,
        default=GatewayConfig.model_fields["admission_max_wait_s"].default,
        help="gateway.admission_max_wait_s: how long tolerant work may be admitted to wait at a region (default: the "
        "fleet's default; 9.9, just under the forward timeout, leaves only the count bound, as before it)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="toy durations, for CI: the output shape is checked")
    args = parser.parse_args(argv)
    if args.smoke:
        args.multiples, args.level_s, args.probe_s, args.settle_s = "0.5,2", 3.0, 3.0, 1.0
    try:
        args.multiples = [float(part) for part in args.multiples.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--multiples: numbers separated by commas, got {args.multiples!r}")
    if not args.multiples or min(args.multiples) <= 0 or args.level_s <= 0 or args.probe_s <= 0:
        parser.error("--multiples, --level-s and --probe-s must be positive")
    with contextlib.redirect_stdout(sys.stderr):  # Ray's notices: keep stdout for the result
        report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    if args.smoke:
        check_shape(report, len(args.multiples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
