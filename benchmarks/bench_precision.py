"""Calibration: cost per item and quality of each embedding precision at the ladder's batch sizes, one torch thread.

`--write-calibration PATH` writes the file the policy reads (schema gridshift.calibration/v1, policies/calibration.py);
the packaged one is policies/data/calibration_minilm_cpu.json. `--smoke` (what CI runs) times one round and checks
the output's shape.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet.serving import Precision
from serve_apps.embedding import EVAL_SENTENCES, MINILM_WEIGHTS_SHA256, MiniLMEmbedder, precision_quality

BATCH_SIZES = (1, 4, 8, 16, 32)
# One thread, as each replica runs in the fleet: the ratios must hold for the deployment, not for an idle box.
THREADS = 1


def machine() -> str:
    """CPU model, core count and architecture: calibration from one machine says little about another."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, {platform.machine()}, {platform.system()}"


def _time_pass(embedder: MiniLMEmbedder, precision: Precision, batch_size: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per item to embed every eval sentence in batches of batch_size (tokenisation
    included). CPU time is the process's (every thread), which is what energy follows on a shared machine."""
    sentences = list(EVAL_SENTENCES)
    start, cpu_start = time.perf_counter(), time.process_time()
    for offset in range(0, len(sentences), batch_size):
        embedder.embed(sentences[offset : offset + batch_size], precision)
    wall_ms = (time.perf_counter() - start) * 1000 / len(sentences)
    return wall_ms, (time.process_time() - cpu_start) * 1000 / len(sentences)


def measure(rounds: int) -> dict[str, Any]:
    """Interleaved rounds in one process, so drift (thermal, other tenants) hits every precision alike."""
    import torch

    embedder = MiniLMEmbedder(torch_threads=THREADS)
    # Quality first: it also builds and warms every variant, so no timed pass pays a lazy build.
    quality = precision_quality(embedder)
    precisions = list(Precision)
    for batch_size in BATCH_SIZES:  # untimed warm-up: first calls at a new shape allocate and pick kernels
        for precision in precisions:
            _time_pass(embedder, precision, batch_size)
    samples: dict[tuple[Precision, int], list[tuple[float, float]]] = {
        (p, b): [] for p in precisions for b in BATCH_SIZES
    }
    for round_index in range(rounds):
        # Rotate the order each round so no precision always runs first (or right after the slowest one).
        shift = round_index % len(precisions)
        order = precisions[shift:] + precisions[:shift]
        for batch_size in BATCH_SIZES:
            for precision in order:
                samples[precision, batch_size].append(_time_pass(embedder, precision, batch_size))

    results = []
    for batch_size in BATCH_SIZES:
        fp32_cpu_ms = statistics.median(cpu for _, cpu in samples[Precision.FP32, batch_size])
        for precision in precisions:
            walls = [wall for wall, _ in samples[precision, batch_size]]
            cpu_ms = statistics.median(cpu for _, cpu in samples[precision, batch_size])
            ms = statistics.median(walls)
            results.append(
                {
                    "precision": precision.value,
                    "batch_size": batch_size,
                    "ms_per_item": round(ms, 3),
                    "cpu_ms_per_item": round(cpu_ms, 3),
                    "items_per_s": round(1000 / ms, 1),
                    "cost_ratio_to_fp32": round(cpu_ms / fp32_cpu_ms, 3),
                    "ms_per_item_min": round(min(walls), 3),
                    "ms_per_item_max": round(max(walls), 3),
                }
            )
    return {
        "schema": "gridshift.calibration/v1",
        "model": embedder.model_name,
        "weights_sha256": MINILM_WEIGHTS_SHA256,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.bench_precision --write-calibration PATH",
        "machine": machine(),
        "torch": torch.__version__,
        "threads": THREADS,
        "rounds": rounds,
        "items_per_pass": len(EVAL_SENTENCES),
        "results": results,
        "quality": {
            precision.value: {
                "mean_cosine_to_fp32": round(report.mean_cosine_to_fp32, 6),
                "min_cosine_to_fp32": round(report.min_cosine_to_fp32, 6),
                "n": report.n,
            }
            for precision, report in quality.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, interleaved across precisions")
    parser.add_argument("--write-calibration", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--smoke", action="store_true", help="one round, for CI: the output shape is checked")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    started = time.perf_counter()
    body = measure(1 if args.smoke else args.rounds)
    if args.smoke:
        check_shape(body)
    if args.write_calibration:
        Path(args.write_calibration).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(body, indent=2))
        return
    print(
        f"{body['machine']}; torch {body['torch']}; {THREADS} thread; {args.rounds} rounds of {body['items_per_pass']}"
    )
    print(
        f"{'precision':<9} {'batch':>5} {'ms/item':>8} {'cpu ms/item':>11} {'items/s':>8} {'cost/fp32':>9}"
        f" {'speed/fp32':>10}  min..max ms"
    )
    for row in body["results"]:
        ratio = row["cost_ratio_to_fp32"]
        print(
            f"{row['precision']:<9} {row['batch_size']:>5} {row['ms_per_item']:>8.2f} {row['cpu_ms_per_item']:>11.2f}"
            f" {row['items_per_s']:>8.1f} {ratio:>9.2f} {1 / ratio:>10.2f}"
            f"  {row['ms_per_item_min']:.2f}..{row['ms_per_item_max']:.2f}"
        )
    print(f"\n{'precision':<9} {'mean cos':>9} {'min cos':>9} {'n':>4}   (cosine to fp32 on the eval sentences)")
    for name, report in body["quality"].items():
        print(f"{name:<9} {report['mean_cosine_to_fp32']:>9.5f} {report['min_cosine_to_fp32']:>9.5f} {report['n']:>4}")
    print(f"\nwall {time.perf_counter() - started:.1f} s")


def check_shape(body: dict[str, Any]) -> None:
    """What the smoke run holds itself to: a row per precision and batch size, every figure positive, every
    precision's quality a cosine in (0, 1] (not a timing or quality target)."""
    rows = {(row["precision"], row["batch_size"]) for row in body["results"]}
    if rows != {(p.value, b) for p in Precision for b in BATCH_SIZES}:
        raise SystemExit(f"bench_precision: rows {sorted(rows)} are not every precision at every batch size")
    for row in body["results"]:
        for key in ("ms_per_item", "cpu_ms_per_item", "items_per_s", "cost_ratio_to_fp32"):
            if not row[key] > 0:
                raise SystemExit(f"bench_precision: {row['precision']} batch {row['batch_size']}: {key} = {row[key]}")
    for name, report in body["quality"].items():
        if not 0 < report["mean_cosine_to_fp32"] <= 1 + 1e-6 or report["n"] < 1:
            raise SystemExit(f"bench_precision: quality of {name}: {report}")


if __name__ == "__main__":
    main()
