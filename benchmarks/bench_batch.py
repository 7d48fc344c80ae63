"""Batch throughput, driver memory and pause latency: gridshift against plain Ray Data, side by side in one run.

    python -m benchmarks.bench_batch                 # 200,000 and 2,000,000 rows; the embedding pipeline at 20,000
    python -m benchmarks.bench_batch --smoke         # seconds: the same comparisons at toy sizes (what CI runs)

One local Ray cluster (2 CPUs); every measured job runs in a driver process of its own that joins it, so each
driver's peak RSS is its own. Plain Ray Data runs the same pipeline function on `read_text` (empty lines kept) and
`write_parquet`, with the same per-worker CPUs and concurrency; gridshift runs `batch.runner.run_job` with the gate
open (a control that always says run), so the figure is the cost of streaming in units, gating and committing
exactly once. Sizes alternate plain, gridshift, plain, gridshift; the throughput ratio is the median of each
back-to-back pair's ratio, rows/s and RSS are medians. Pause latency: one paced job
under the real ControlPlane, paused and resumed by an operator N times: from each pause decision to the moment no
new block started (and how many started after it), and from each resume decision to the first new block.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress

UPPERCASE = "example_pipelines.uppercase:uppercase"
EMBED = "example_pipelines.embed_corpus:embed_corpus"
PACED = "example_pipelines.paced:paced_uppercase"
KNOBS = BatchKnobs(batch_size=16, precision="fp32", concurrency=2, num_cpus=0.25)


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message says which."""


def write_input(path: Path, rows: int) -> None:
    """Deterministic text, one row a line (about 40 bytes a row)."""
    with path.open("w") as handle:
        for start in range(0, rows, 10_000):
            handle.writelines(
                f"line {i}: the grid can wait for this one\n" for i in range(start, min(rows, start + 10_000))
            )


class _OpenGate:
    """A control that always says run (the comparison is the engine's, not the grid's)."""

    def gate(self, progress: JobProgress) -> GateAnswer:
        del progress
        return GateAnswer(True, "gate open (benchmark)", None, KNOBS, 0.0)

    def report(self, progress: JobProgress) -> None:
        del progress


def child(kind: str, pipeline: str, source: str, output: str, address: str) -> dict[str, float]:
    """One measured job in this process (a driver of its own): its wall seconds and this process's peak RSS."""
    import ray
    import ray.data

    from batch.runner import run_job
    from batch.spec import BatchJobSpec, load_pipeline

    ray.init(address=address, namespace="gridshift", logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.perf_counter()
    if kind == "plain":
        dataset = ray.data.read_text(source, drop_empty_lines=False, num_cpus=KNOBS.num_cpus)
        load_pipeline(pipeline)(dataset, KNOBS).write_parquet(
            output, ray_remote_args={"num_cpus": KNOBS.num_cpus}, concurrency=KNOBS.concurrency
        )
    else:
        spec = BatchJobSpec.model_validate(
            {
                "job_id": "bench",
                "pipeline": pipeline,
                "input": source,
                "output": output,
                "deadline": "2030-01-01T00:00:00Z",
                "region": "us-west-1",
                "max_workers": KNOBS.concurrency,
                "worker_cpus": KNOBS.num_cpus,
            }
        )
        run_job(spec, _OpenGate())
    seconds = time.perf_counter() - started
    ray.shutdown()
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(kind: str, pipeline: str, source: Path, work: Path, address: str) -> dict[str, float]:
    output = work / f"out-{kind}"
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "benchmarks.bench_batch", "--child", kind, "--pipeline", pipeline]
    command += ["--source", str(source), "--output", str(output), "--address", address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise BenchError(f"{kind} {pipeline} on {source.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(output, ignore_errors=True)
    return result


def compare(pipeline: str, rows: int, reps: int, work: Path, address: str) -> dict[str, Any]:
    """Plain and gridshift alternately on the same input; medians and their ratios."""
    source = work / f"input-{rows}.txt"
    write_input(source, rows)
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "gridshift": []}
    for _ in range(reps):
        for kind in ("plain", "gridshift"):
            runs[kind].append(_run_child(kind, pipeline, source, work, address))
    source.unlink()
    med = {
        kind: {key: statistics.median(r[key] for r in results) for key in ("seconds", "peak_rss_mb")}
        for kind, results in runs.items()
    }
    return {
        "pipeline": pipeline.rsplit(":", 1)[-1],
        "rows": rows,
        "reps": reps,
        "plain_rows_per_s": rows / med["plain"]["seconds"],
        "gridshift_rows_per_s": rows / med["gridshift"]["seconds"],
        # Each pair ran back to back: the median of the pairs' ratios cancels a background load that drifts between
        # pairs (the machine is shared), where a ratio of medians would mix runs from different moments.
        "throughput_ratio": statistics.median(
            p["seconds"] / g["seconds"] for p, g in zip(runs["plain"], runs["gridshift"], strict=True)
        ),
        "plain_driver_peak_rss_mb": med["plain"]["peak_rss_mb"],
        "gridshift_driver_peak_rss_mb": med["gridshift"]["peak_rss_mb"],
        "rss_ratio": med["gridshift"]["peak_rss_mb"] / med["plain"]["peak_rss_mb"],
    }


def pause_latency(pauses: int, rows: int, work: Path) -> dict[str, Any]:
    """Pause and resume one paced job `pauses` times through the real control plane, in this process."""
    import ray

    from batch.runner import run_job
    from batch.spec import BatchJobSpec
    from fleet.clock import FixedClock
    from fleet.loaders import load_fleet
    from grid.context import load_context
    from policies.control import ControlPlane

    # 2022-09-06T17:00Z, inside the planned window of a job due the next day: the gate's only reason to pause is ours.
    # Blocks of 50 rows at 2 ms a row take 0.1 s each: the pause is measured, not the block.
    plane = ControlPlane(load_context(load_fleet()), FixedClock(1_662_483_600), FixedClock(0.0))
    source = work / "paced.txt"
    write_input(source, rows)
    spec = BatchJobSpec.model_validate(
        {
            "job_id": "pauses",
            "pipeline": PACED,
            "input": str(source),
            "output": str(work / "out-pauses"),
            "deadline": "2022-09-07T12:00:00Z",
            "region": "us-west-1",
            "block_rows": 50,
        }
    )
    lock = threading.Lock()

    class Control:
        def gate(self, progress: JobProgress) -> GateAnswer:
            with lock:
                return plane.batch_gate(progress)

        def report(self, progress: JobProgress) -> None:
            with lock:
                plane.batch_report(progress)

    decisions: list[tuple[float, float]] = []  # (pause at, resume at), wall time
    done = threading.Event()
    result: list[Any] = []

    def drive() -> None:
        for _ in range(pauses):
            time.sleep(1.5)  # running
            if done.is_set():
                return
            with lock:
                paused_at = time.time()
                plane.pause_job(spec.job_id)
            time.sleep(1.2)  # paused: long enough for the gate to close and in-flight blocks to drain
            with lock:
                resumed_at = time.time()
                plane.resume_job(spec.job_id)
            decisions.append((paused_at, resumed_at))

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    result.append(run_job(spec, Control(), sleep=lambda s: time.sleep(min(s, 0.1))))
    done.set()
    driver.join(timeout=30)
    # Every block start of the job, in time order, whatever its segment.
    admits = sorted(at for starts, _closed in result[0].timeline.values() for at in starts)
    reactions, late, resumes = [], [], []
    for paused_at, resumed_at in decisions:
        started_while_pausing = [at for at in admits if paused_at < at < resumed_at]
        reactions.append(max(started_while_pausing, default=paused_at) - paused_at)
        late.append(len(started_while_pausing))
        after = [at for at in admits if at > resumed_at]
        if after:
            resumes.append(after[0] - resumed_at)
    shutil.rmtree(work / "out-pauses", ignore_errors=True)
    ray.shutdown()
    if not reactions or not resumes:
        raise BenchError("no pause landed inside the job: lengthen it")
    return {
        "pauses": len(reactions),
        "pause_to_last_new_block_s_p50": statistics.median(reactions),
        "pause_to_last_new_block_s_max": max(reactions),
        "blocks_started_after_decision_max": max(late),
        "resume_to_first_block_s_p50": statistics.median(resumes),
        "resume_to_first_block_s_max": max(resumes),
    }


def render(report: dict[str, Any]) -> str:
    lines = ["pipeline     rows        plain rows/s  gridshift rows/s  ratio   driver RSS MB plain/gridshift (ratio)"]
    for row in report["throughput"]:
        lines.append(
            f"{row['pipeline']:<12} {row['rows']:<11,} {row['plain_rows_per_s']:>12,.0f}  "
            f"{row['gridshift_rows_per_s']:>16,.0f}  {row['throughput_ratio']:>5.2f}x  "
            f"{row['plain_driver_peak_rss_mb']:>6.0f} / {row['gridshift_driver_peak_rss_mb']:.0f} "
            f"({row['rss_ratio']:.2f}x)"
        )
    pause = report["pause"]
    if pause is None:
        return "\n".join(lines)
    lines.append(
        f"pause: {pause['pauses']} pauses; decision -> last new block p50 {pause['pause_to_last_new_block_s_p50']:.2f}"
        f" s, max {pause['pause_to_last_new_block_s_max']:.2f} s; blocks started after a decision at most "
        f"{pause['blocks_started_after_decision_max']}; resume -> first block p50 "
        f"{pause['resume_to_first_block_s_p50']:.2f} s, max {pause['resume_to_first_block_s_max']:.2f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, for CI: the output shape is checked")
    parser.add_argument("--rows", default="200000,2000000", help="comma-separated row counts (uppercase pipeline)")
    parser.add_argument("--embed-rows", type=int, default=20_000, help="rows for the embedding pipeline (0: skip)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--embed-reps", type=int, default=3, help="repetitions of the embedding pair (the noisiest)")
    parser.add_argument("--pauses", type=int, default=20, help="pause/resume cycles measured (0: skip)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=("plain", "gridshift"), help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.pipeline, args.source, args.output, args.address)))
        return 0
    import ray

    sizes = [2_000, 20_000] if args.smoke else [int(r) for r in args.rows.split(",") if r]
    embed_rows = 200 if args.smoke else args.embed_rows
    reps = 1 if args.smoke else args.reps
    pauses = 3 if args.smoke else args.pauses
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, namespace="gridshift")
    address = ray.get_runtime_context().gcs_address
    work = Path(tempfile.mkdtemp(prefix="gridshift-bench-batch-"))
    try:
        throughput = [compare(UPPERCASE, rows, reps, work, address) for rows in sizes]
        if embed_rows:
            throughput.append(compare(EMBED, embed_rows, 1 if args.smoke else args.embed_reps, work, address))
        report = {
            "schema": "gridshift.bench_batch/v1",
            "smoke": args.smoke,
            "throughput": throughput,
            "pause": pause_latency(pauses, 2_000 if args.smoke else 40_000, work) if pauses else None,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if ray.is_initialized():
            ray.shutdown()
    if args.smoke:
        check_shape(report)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def check_shape(report: dict[str, Any]) -> None:
    """What the smoke run holds itself to: every figure present, finite and positive (not a timing target)."""
    for row in report["throughput"]:
        for key in ("throughput_ratio", "rss_ratio", "plain_rows_per_s", "gridshift_rows_per_s"):
            if not row[key] > 0:
                raise BenchError(f"{row['pipeline']} at {row['rows']} rows: {key} = {row[key]}")
    if report["pause"]["pauses"] < 1:
        raise BenchError("no pause measured")


if __name__ == "__main__":
    sys.exit(main())
