"""The overload benchmark's traffic and its arithmetic: the requests it sends (real-time share, origins, sentences),
the closed and open loops that send them, and each level's figures (goodput within the window, latencies, rejections,
CPU shares). benchmarks/bench_overload.py deploys the fleet and runs the levels."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.gateway_paths import MODEL, SENTENCES
from benchmarks.ideal_queue import percentile
from benchmarks.process_cpu import share_of
from loadtests.azure_trace import TraceRequest

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
REALTIME_SHARE = 0.3


@dataclass
class Answer:
    done_s: float  # perf_counter time of the answer
    workload_class: str
    origin: str
    status: int
    latency_s: float
    region: str
    overloaded: bool  # 503 from admission, with Retry-After
    sentences: int
    route: str = ""  # the answer's routing headers: reason, attempts, regions passed over as full
    retry_after_s: float = 0.0  # what a rejection asked the client to wait


@dataclass(frozen=True)
class Level:
    label: str
    multiple: float
    offered_per_s: float
    goodput_per_s: float  # answers completed within the sending window, per second of it
    goodput_of_capacity: float
    goodput_with_drain_per_s: float  # every answer, over the window plus the drain (this benchmark's earlier figure)
    accepted: int
    overloaded: int
    other_failures: int
    p50_ms: float
    p99_ms: float
    reject_p50_ms: float | None
    reject_max_ms: float | None
    emergency_spill: int  # tolerant requests served under stress 3 (or the posted event)
    spill_routes: list[str]  # how the first few of them were routed, to tell a failover from a spill
    ideal_p99_ms: float  # the same arrivals through an ideal queue at the measured capacity (benchmarks.ideal_queue)
    served_by_region: dict[str, int]  # where the accepted requests were served
    p99_by_region_ms: dict[str, float]
    cpu_share: dict[str, float]  # each role's share of the CPU used during the level (benchmarks.process_cpu)
    ingress_cpu_ms_per_request: float  # CPU of Serve's proxy and the gateway replica per request offered


def _request(rng: random.Random, sentences: int) -> tuple[dict[str, str], bytes, str, str]:
    klass = "realtime" if rng.random() < REALTIME_SHARE else "tolerant"
    origin = rng.choice(REGIONS)
    texts = [SENTENCES[(rng.randrange(len(SENTENCES)) + i) % len(SENTENCES)] for i in range(sentences)]
    headers = {"Content-Type": "application/json", "X-Gridshift-Class": klass, "X-Gridshift-Origin": origin}
    return headers, json.dumps({"input": texts, "model": MODEL}).encode(), klass, origin


async def _send(session: aiohttp.ClientSession, url: str, rng: random.Random, sentences: int) -> Answer:
    headers, body, klass, origin = _request(rng, sentences)
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            text = await response.read()
            elapsed = time.perf_counter() - started
            # A rejection must say when to come back; without Retry-After it counts as another failure.
            overloaded = response.status == 503 and b'"overloaded"' in text and "Retry-After" in response.headers
            region = response.headers.get("X-Gridshift-Region", "")
            route = " ".join(
                f"{name}={response.headers.get(f'X-Gridshift-{name}', '')}" for name in ("Reason", "Attempts", "Full")
            )
            done = time.perf_counter()
            retry_s = _seconds(response.headers.get("Retry-After", "")) if overloaded else 0.0
            return Answer(done, klass, origin, response.status, elapsed, region, overloaded, sentences, route, retry_s)
    except aiohttp.ClientError:  # no answer at all: a failure, counted as such
        return Answer(time.perf_counter(), klass, origin, 0, time.perf_counter() - started, "", False, sentences)


def _seconds(retry_after: str) -> float:
    """Retry-After in seconds (the gateway sends whole seconds; an HTTP date or garbage counts as one second)."""
    try:
        return max(float(retry_after), 0.0)
    except ValueError:
        return 1.0


async def closed_loop(url: str, requests: list[TraceRequest], clients: int, duration_s: float) -> list[Answer]:
    """`clients` senders, each sending its next request when the last is answered, for `duration_s`. A rejected
    client waits the Retry-After it was given, as the gridshift and openai clients do: otherwise the probe would
    measure how fast the fleet rejects a retry storm, not what it serves."""
    answers: list[Answer] = []
    deadline = time.perf_counter() + duration_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def client(seed: int) -> None:
            rng = random.Random(seed)
            index = seed * 101
            while time.perf_counter() < deadline:
                answer = await _send(session, url, rng, requests[index % len(requests)].sentences)
                answers.append(answer)
                index += 1
                if answer.retry_after_s > 0:
                    await asyncio.sleep(min(answer.retry_after_s, max(deadline - time.perf_counter(), 0.0)))

        await asyncio.gather(*(client(seed) for seed in range(clients)))
    return answers


async def open_loop(url: str, plan: list[TraceRequest], seed: int) -> list[Answer]:
    """Every request of `plan` sent at its time, whatever the answers do (open loop)."""
    rng = random.Random(seed)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        tasks = []
        for request in plan:
            delay = request.at_s - (time.perf_counter() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, url, rng, request.sentences)))
        return list(await asyncio.gather(*tasks))


def first_sent_s(answers: list[Answer]) -> float:
    """When the first of `answers` was sent (perf_counter seconds)."""
    return min((a.done_s - a.latency_s for a in answers), default=0.0)


def completed_within(answers: list[Answer], from_s: float, duration_s: float) -> int:
    """How many of `answers` completed within `duration_s` of `from_s`."""
    return sum(a.done_s - from_s <= duration_s for a in answers)


def summarize(
    label: str,
    multiple: float,
    capacity: float,
    duration_s: float,
    answers: list[Answer],
    avoid: set[str],
    ideal: list[float] | None = None,
    cpu_s: dict[str, float] | None = None,
) -> Level:
    """One level's figures. Goodput counts the answers completed within the sending window, per second of it: the
    rate served while the load is offered, so a backlog served after the window is not counted as extra throughput,
    and the drain (regions going idle one by one as their queues empty, with nothing offered) is not counted as
    lost throughput either. `goodput_with_drain_per_s` is the earlier figure: every answer over the window plus the
    drain, which reads low by the drain's idle time. `ideal`: the ideal queue's latencies (s) for the level's
    arrivals."""
    accepted = [a for a in answers if a.status == 200]
    first_sent = first_sent_s(answers)
    served_over_s = max(duration_s, max((a.done_s for a in answers), default=0.0) - first_sent)
    in_window = completed_within(accepted, first_sent, duration_s)
    overloaded = [a for a in answers if a.overloaded]
    latencies = sorted(a.latency_s * 1000 for a in accepted) or [float("nan")]
    rejects = sorted(a.latency_s * 1000 for a in overloaded)
    spilled = [a for a in accepted if a.workload_class == "tolerant" and a.region in avoid]
    return Level(
        label=label,
        multiple=multiple,
        offered_per_s=len(answers) / duration_s,
        goodput_per_s=in_window / duration_s,
        goodput_of_capacity=in_window / duration_s / capacity,
        goodput_with_drain_per_s=len(accepted) / served_over_s,
        accepted=len(accepted),
        overloaded=len(overloaded),
        other_failures=len(answers) - len(accepted) - len(overloaded),
        p50_ms=statistics.median(latencies),
        p99_ms=percentile(latencies, 0.99),
        reject_p50_ms=statistics.median(rejects) if rejects else None,
        reject_max_ms=max(rejects) if rejects else None,
        emergency_spill=len(spilled),
        spill_routes=[f"{a.origin} -> {a.region}: {a.route}" for a in spilled[:5]],
        ideal_p99_ms=percentile(ideal or [], 0.99) * 1000,
        served_by_region={r: sum(a.region == r for a in accepted) for r in REGIONS},
        p99_by_region_ms={
            r: percentile([a.latency_s * 1000 for a in accepted if a.region == r], 0.99) for r in REGIONS
        },
        cpu_share=share_of(cpu_s or {}),
        ingress_cpu_ms_per_request=sum((cpu_s or {}).get(role, 0.0) for role in ("gateway", "proxy"))
        * 1000
        / max(len(answers), 1),
    )
