"""Benchmark: each rung of the magnitude ladder against full precision, side by side, at one fixed request rate.

    python -m benchmarks.bench_ladder [--rates 20,50,80] [--requests 400] [--rounds 2] [--tolerant-share 0.7] [--json]
    python -m benchmarks.bench_ladder --smoke     # one rate, 20 requests, one round: what CI runs, shape checked

One local Ray cluster (a fresh one), one regional Serve deployment of the real all-MiniLM-L6-v2 (one torch thread,
as the fleet runs it), its knob sync off so the benchmark sets each rung's knobs itself (`set_knobs`, live, no
restart). Requests go through a deployment handle at a fixed rate (open loop: one every 1/rate s whatever the
answers do), one or two sentences of the evaluation set each, tolerant or real-time by the given share, so every
rung serves exactly the same work. Each rate is measured in turn, in the same cluster and run. Rounds alternate the
rung order (rotated each round), so drift on this shared machine hits every rung alike; a short warm-up at each
rung's knobs precedes its timed requests.

Per rung: CPU-seconds per 1,000 requests, of the model thread (what the replica reports to the power model) and of
the whole replica process (tokenisation, batching, Serve's own work: what a meter would see); the dynamic power
that CPU implies relative to rung 0 (the power model is linear in utilisation, so the CPU ratio is the dynamic
power ratio), and the site power the policy's estimate gives for us-west-1 at that utilisation; and quality: each
class's precision at the rung and its cosine similarity to fp32 on the evaluation sentences, measured in this run.
Target: at stress level 2 (rung 2), at least 40 % less dynamic power with cosine at least 0.99 to fp32.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil
from ray import serve

from benchmarks.bench_precision import machine
from fleet.config import FleetConfig
from fleet.loaders import load_fleet
from fleet.serving import Knobs, Precision
from policies.calibration import Calibration, load_calibration
from policies.ladder import knobs_for_step
from policies.load import RegionLoad
from policies.power import PowerInputs, estimate_power
from serve_apps.embedding import EVAL_SENTENCES, MiniLMEmbedder, precision_quality
from serve_apps.regional import RegionalApp
from serve_apps.up import start_local_ray, wait_until_running

APP = "bench-ladder"
POWER_REGION = "us-west-1"  # the scale the site-power column is given at
TARGET_RUNG = 2
TARGET_DYNAMIC_SAVING = 0.40
TARGET_COSINE = 0.99


@dataclass
class RungResult:
    rung: int
    knobs: dict[str, Any]
    requests: int
    model_cpu_s_per_1000: float
    process_cpu_s_per_1000: float
    model_ratio: float = 1.0
    process_ratio: float = 1.0
    site_kw: float = 0.0
    realtime_precision: str = ""
    tolerant_precision: str = ""
    realtime_mean_cosine: float = 1.0
    tolerant_mean_cosine: float = 1.0
    worst_min_cosine: float = 1.0
    rounds_model: tuple[float, ...] = ()


async def _drive(handle: Any, requests: int, rate: float, tolerant_share: float, seed: int) -> None:
    """Open loop at `rate` requests per second; waits for every answer at the end."""
    rng = random.Random(seed)
    pending = []
    started = time.perf_counter()
    for index in range(requests):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        texts = rng.sample(EVAL_SENTENCES, rng.randint(1, 2))
        workload = "tolerant" if rng.random() < tolerant_share else "realtime"
        pending.append(handle.embed.remote(texts, workload))
    for response in pending:
        await response


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _measure(
    handle: Any, process: psutil.Process, knobs: Knobs, args: argparse.Namespace, rate: float, seed: int
) -> tuple[float, float]:
    await handle.set_knobs.remote(knobs.model_dump(mode="json"))
    await _drive(handle, max(args.requests // 10, 20), rate, args.tolerant_share, seed + 1)  # warm-up
    before = await handle.stats.remote()
    cpu_before = _cpu_s(process)
    await _drive(handle, args.requests, rate, args.tolerant_share, seed)
    after = await handle.stats.remote()
    process_s = _cpu_s(process) - cpu_before
    model_s = sum(after["busy_cpu_s_by_precision"].values()) - sum(before["busy_cpu_s_by_precision"].values())
    return model_s, process_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    fleet: FleetConfig = load_fleet()
    calibration = load_calibration(fleet.policy.calibration_file)
    rung_knobs = [knobs_for_step(step, fleet.serving.knobs, fleet.policy, calibration) for step in fleet.policy.steps]

    # Quality of every precision on the evaluation set, measured now, in this run, with the same weights.
    quality = precision_quality(MiniLMEmbedder(torch_threads=1))

    logging.getLogger("ray").setLevel(logging.WARNING)
    start_local_ray(num_cpus=2)
    serving = fleet.serving
    deployment = RegionalApp.options(name="region-bench", num_replicas=1, ray_actor_options={"num_cpus": 0.5})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(
        deployment.bind(
            POWER_REGION,
            serving.model_import_path,
            serving.model_kwargs,
            serving.model_name,
            serving.batch_wait_timeout_s,
            serving.torch_threads,
        ),
        name=APP,
        route_prefix="/bench-ladder",
        blocking=False,
    )
    wait_until_running(APP, 300)
    handle = serve.get_deployment_handle("region-bench", app_name=APP)

    async def measure_all() -> dict[float, dict[int, list[tuple[float, float]]]]:
        stats = await handle.stats.remote()
        process = psutil.Process(stats["pid"])
        samples: dict[float, dict[int, list[tuple[float, float]]]] = {}
        rungs = list(range(len(rung_knobs)))
        for rate in args.rates:
            samples[rate] = {rung: [] for rung in rungs}
            for round_index in range(args.rounds):
                shift = round_index % len(rungs)
                for rung in rungs[shift:] + rungs[:shift]:
                    sample = await _measure(handle, process, rung_knobs[rung], args, rate, seed=round_index)
                    samples[rate][rung].append(sample)
        return samples

    started = time.perf_counter()
    try:
        samples = asyncio.run(measure_all())
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        import ray

        ray.shutdown()
    wall_s = time.perf_counter() - started
    levels = [_level(rate, samples[rate], rung_knobs, quality, fleet, calibration, args) for rate in args.rates]
    return {
        "schema": "gridshift.bench_ladder/v1",
        "machine": machine(),
        "requests_per_rung_round": args.requests,
        "rounds": args.rounds,
        "tolerant_share": args.tolerant_share,
        "wall_s": round(wall_s, 1),
        "levels": levels,
        "target_met_at_rates": [level["rate_per_s"] for level in levels if level["target"]["met"]],
    }


def _level(
    rate: float,
    samples: dict[int, list[tuple[float, float]]],
    rung_knobs: Sequence[Knobs],
    quality: dict[Precision, Any],
    fleet: FleetConfig,
    calibration: Calibration,
    args: argparse.Namespace,
) -> dict[str, Any]:
    per_1000 = 1000.0 / args.requests
    results = []
    for rung, knobs in enumerate(rung_knobs):
        model = [m * per_1000 for m, _ in samples[rung]]
        process = [p * per_1000 for _, p in samples[rung]]
        realtime, tolerant = knobs.precision_for("realtime"), knobs.precision_for("tolerant")
        results.append(
            RungResult(
                rung=rung,
                knobs=knobs.model_dump(mode="json"),
                requests=args.requests * args.rounds,
                model_cpu_s_per_1000=statistics.median(model),
                process_cpu_s_per_1000=statistics.median(process),
                realtime_precision=realtime.value,
                tolerant_precision=tolerant.value,
                realtime_mean_cosine=quality[realtime].mean_cosine_to_fp32,
                tolerant_mean_cosine=quality[tolerant].mean_cosine_to_fp32,
                worst_min_cosine=min(quality[realtime].min_cosine_to_fp32, quality[tolerant].min_cosine_to_fp32),
                rounds_model=tuple(round(m, 3) for m in model),
            )
        )
    base = results[0]
    region = fleet.region(POWER_REGION)
    for result in results:
        result.model_ratio = result.model_cpu_s_per_1000 / base.model_cpu_s_per_1000
        result.process_ratio = result.process_cpu_s_per_1000 / base.process_cpu_s_per_1000
        # The replica at this rate is the region's whole compute (one CPU): its utilisation scales to 15 MW.
        busy = result.process_cpu_s_per_1000 * rate / 1000.0
        load = RegionLoad(replicas=1, busy_cpu_s_per_s=busy, busy_by_class={}, busy_by_precision={})
        estimate = estimate_power(
            region, PowerInputs(load, Knobs(), 1.0), fleet.power, calibration, fleet.policy.quality_floor
        )
        result.site_kw = estimate.site_kw
    target = results[TARGET_RUNG]
    saving = 1.0 - target.process_ratio
    quality_ok = min(target.realtime_mean_cosine, target.tolerant_mean_cosine) >= TARGET_COSINE
    return {
        "rate_per_s": rate,
        "results": [asdict(r) for r in results],
        "target": {
            "rung": TARGET_RUNG,
            "dynamic_power_saving": round(saving, 4),
            "model_dynamic_power_saving": round(1.0 - target.model_ratio, 4),
            "min_mean_cosine": round(min(target.realtime_mean_cosine, target.tolerant_mean_cosine), 6),
            "met": saving >= TARGET_DYNAMIC_SAVING and quality_ok,
        },
    }


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['machine']}; {summary['tolerant_share']:.0%} tolerant, {summary['requests_per_rung_round']} "
        f"requests x {summary['rounds']} rounds per rung and rate, {summary['wall_s']} s",
    ]
    for level in summary["levels"]:
        lines.append(f"\nat {level['rate_per_s']:g} requests/s (fixed, open loop):")
        lines.append(
            f"{'rung':>4} {'realtime':>8} {'tolerant':>8} {'batch':>5} {'conc':>4} {'model CPU-s/1k':>14} "
            f"{'x rung0':>7} {'replica CPU-s/1k':>16} {'x rung0':>7} {'site kW':>8} {'rt cos':>8} {'tol cos':>8} "
            f"{'min cos':>8}"
        )
        for r in level["results"]:
            lines.append(
                f"{r['rung']:>4} {r['realtime_precision']:>8} {r['tolerant_precision']:>8} "
                f"{r['knobs']['max_batch_size']:>5} {r['knobs']['max_concurrency']:>4} "
                f"{r['model_cpu_s_per_1000']:>14.2f} {r['model_ratio']:>7.2f} {r['process_cpu_s_per_1000']:>16.2f} "
                f"{r['process_ratio']:>7.2f} {r['site_kw']:>8,.0f} {r['realtime_mean_cosine']:>8.5f} "
                f"{r['tolerant_mean_cosine']:>8.5f} {r['worst_min_cosine']:>8.5f}"
            )
        t = level["target"]
        lines.append(
            f"target (rung {t['rung']}): dynamic power -{t['dynamic_power_saving']:.0%} (replica CPU; model thread "
            f"-{t['model_dynamic_power_saving']:.0%}) at mean cosine >= {t['min_mean_cosine']:.5f}: "
            f"{'met' if t['met'] else 'MISSED'} (needs -40% at >= 0.99)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="20,50,80", help="fixed request rates, per second, comma-separated")
    parser.add_argument("--requests", type=int, default=400, help="timed requests per rung per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tolerant-share", type=float, default=0.7)
    parser.add_argument("--port", type=int, default=18300, help="Serve HTTP port (loopback)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="one rate, 20 requests, one round, for CI: shape checked")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rates, args.requests, args.rounds = "20", 20, 1
    try:
        args.rates = [float(part) for part in args.rates.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--rates: expected numbers separated by commas, got {args.rates!r}")
    if not args.rates or min(args.rates) <= 0 or args.requests < 20 or args.rounds < 1:
        parser.error("--rates > 0, --requests >= 20 and --rounds >= 1")
    if not 0 <= args.tolerant_share <= 1:
        parser.error("--tolerant-share must be in [0, 1]")
    summary = run(args)
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    if args.smoke:
        check_shape(summary, len(args.rates))
    return 0


def check_shape(summary: dict[str, Any], rates: int) -> None:
    """What the smoke run holds itself to: a level per rate, a result per rung, every CPU figure positive and every
    cosine in (0, 1] (not the power target: toy sizes cannot measure it)."""
    if len(summary["levels"]) != rates:
        raise SystemExit(f"bench_ladder: {len(summary['levels'])} levels for {rates} rates")
    for level in summary["levels"]:
        for row in level["results"]:
            if not (row["model_cpu_s_per_1000"] > 0 and row["process_cpu_s_per_1000"] > 0):
                raise SystemExit(f"bench_ladder: rung {row['rung']} at {level['rate_per_s']}/s: no CPU measured")
            if not 0 < row["tolerant_mean_cosine"] <= 1 + 1e-6:
                raise SystemExit(f"bench_ladder: rung {row['rung']}: cosine {row['tolerant_mean_cosine']}")


if __name__ == "__main__":
    sys.exit(main())
