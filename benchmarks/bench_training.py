"""Training as flexible load: pause reaction, lost work per pause, the overhead of N pauses against an uninterrupted
run, and step rate and kW at full size and shrunk, side by side in one run.

    python -m benchmarks.bench_training            # 10 pauses of a 6,000-step digits run, and the shrink rung
    python -m benchmarks.bench_training --smoke    # 1 pause of a short run and the shrink rung (what CI runs)

One local Ray cluster (2 CPUs). The digits example (example_pipelines/train_digits.py), 2 workers of 0.25 CPU and one
torch thread each, the same seed throughout, under the real ControlPlane in this process:
- reference: uninterrupted (flex tier 0);
- paused: the same job paused by an operator N times at evenly spaced steps and resumed at once; each pause's
  reaction (the gate's decision to the workers released, i.e. `fit` returned) and lost steps (trained after the
  last commit, so trained again); overhead = (paused wall - reference wall) / reference wall, where the paused wall
  counts only time running or restarting (the time held paused is the grid's, not overhead);
- shrink: tier 3 at ladder rung 1 (the policy's decision, made in process): 2 workers down to 1; steps per second
  and the region's kW (the power model over the workers' measured CPU) at each size.
The final models of the reference and paused runs are compared (max parameter difference).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from policies.training_gate import TrainingAnswer, TrainingProgress

SEPT_6_19H_S = 1_662_490_800  # us-west-1's carbon plan runs at once: the only pauses are the benchmark's
DIGITS = "example_pipelines.train_digits:train_digits"


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message says which."""


class _Control:
    """The real ControlPlane in this process; `hook` runs before each gate with the latest progress."""

    def __init__(self, plane: Any, hook: Any = None) -> None:
        self.plane = plane
        self._hook = hook
        self._lock = threading.Lock()
        self.reports: list[TrainingProgress] = []

    def gate(self, progress: TrainingProgress) -> TrainingAnswer:
        with self._lock:
            if self._hook is not None:
                self._hook(progress)
            answer: TrainingAnswer = self.plane.training_gate(progress)
            return answer

    def report(self, progress: TrainingProgress) -> None:
        with self._lock:
            self.plane.training_report(progress)
            self.reports.append(progress)

    def now_s(self) -> float:
        return float(self.plane.clock_now_s())


def _spec(storage: Path, job_id: str, steps: int, tier: int) -> Any:
    from training.spec import TrainingJobSpec

    return TrainingJobSpec.model_validate(
        {
            "job_id": job_id,
            "trainer": DIGITS,
            "steps": steps,
            "config": {"seed": 11, "hidden": 256},
            "deadline": "2022-09-08T00:00:00Z",
            "region": "us-west-1",
            "flex_tier": tier,
            "workers": 2,
            "checkpoint_every_s": 5.0,
            "storage_path": str(storage),
            "step_s": 0.01,
        }
    )


def _plane() -> Any:
    from fleet.clock import FixedClock
    from fleet.loaders import load_fleet
    from grid.context import load_context
    from policies.control import ControlPlane

    return ControlPlane(load_context(load_fleet()), FixedClock(SEPT_6_19H_S), FixedClock(0.0))


def run_reference(storage: Path, steps: int) -> dict[str, Any]:
    from training.runner import run_job

    started = time.monotonic()
    result = run_job(_spec(storage, "reference", steps, 0), _Control(_plane()))
    return {"wall_s": time.monotonic() - started, "result": result}


def run_paused(storage: Path, steps: int, pauses: int) -> dict[str, Any]:
    """The same job paused by an operator at evenly spaced committed steps, resumed as soon as it reports paused."""
    from training.runner import run_job

    plane = _plane()
    marks = [steps * (k + 1) // (pauses + 1) for k in range(pauses)]
    held = {"since": 0.0, "total": 0.0}

    def operator(progress: TrainingProgress) -> None:
        if progress.state == "paused" and plane.training_jobs.paused:
            plane.resume_training("paused")
            held["total"] += time.monotonic() - held["since"]
        elif marks and progress.state == "running" and progress.steps_seen >= marks[0]:
            marks.pop(0)
            plane.pause_training("paused")
            held["since"] = time.monotonic()

    started = time.monotonic()
    result = run_job(_spec(storage, "paused", steps, 2), _Control(plane, operator))
    return {"wall_s": time.monotonic() - started, "held_s": held["total"], "result": result}


def run_shrink(storage: Path, steps: int) -> dict[str, Any]:
    """A tier-3 job: full size, then (at a third of its steps) the policy's rung 1 halves it."""
    from fleet.events import DREvent
    from policies.calibration import load_calibration
    from policies.ladder import decide_fleet
    from policies.power import PowerInputs, estimate_power
    from training.runner import run_job

    plane = _plane()
    fleet = plane.fleet
    calibration = load_calibration(fleet.policy.calibration_file)
    kw: dict[int, float] = {}

    def policy(progress: TrainingProgress) -> None:
        if progress.state == "running" and progress.cpu_s_per_s > 0:
            # The region's site kW with only this job running, from its workers' measured CPU.
            load = plane.training_jobs.load("us-west-1")
            inputs = PowerInputs(
                load=plane.measurements.loads.region("us-west-1", 0.0),
                knobs=fleet.serving.knobs,
                compute_cpus=fleet.serving.replicas_per_region * fleet.serving.torch_threads,
                training=load,
            )
            estimate = estimate_power(fleet.region("us-west-1"), inputs, fleet.power, calibration, {})
            kw[progress.workers] = estimate.site_kw
        if progress.steps_seen >= steps // 3 and not plane.events:
            plane.post_event(
                DREvent(region="us-west-1", level=1, start="2022-09-06T18:00:00Z", end="2022-09-06T22:00:00Z")
            )
            plane.publish_policy(decide_fleet(plane.policy_inputs(), {}, fleet, calibration), calibration)

    result = run_job(_spec(storage, "shrink", steps, 3), _Control(plane, policy))
    return {"result": result, "kw": kw}


def max_difference(first: str, second: str) -> float:
    """Largest difference between any two corresponding tensors saved in the two checkpoints' .pt files (whatever the
    trainer's own layout: model parameters, optimizer state); infinite when their structure differs."""
    import torch

    def leaves(value: Any, path: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in leaves(item, f"{path}/{key}").items()}
        if isinstance(value, list | tuple):
            return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}/{i}").items()}
        return {path: value}

    def tensors(folder: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for file in sorted(Path(folder).glob("*.pt")):
            found.update(leaves(torch.load(file, weights_only=True), file.name))
        return found

    a, b = tensors(first), tensors(second)
    if not a or a.keys() != b.keys():
        return math.inf
    return max(
        float((a[key].double() - b[key].double()).abs().max())
        if isinstance(a[key], torch.Tensor)
        else (0.0 if a[key] == b[key] else math.inf)
        for key in a
    )


def measure(steps: int, pauses: int, shrink_steps: int) -> dict[str, Any]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as folder:
            storage = Path(folder)
            reference = run_reference(storage, steps)
            paused = run_paused(storage, steps, pauses)
            shrink = run_shrink(storage, shrink_steps)
            difference = max_difference(reference["result"].checkpoint_path, paused["result"].checkpoint_path)
    finally:
        ray.shutdown()
    stops = paused["result"].pauses
    step_s = reference["wall_s"] / steps
    shrunk = shrink["result"]
    return {
        "steps": steps,
        "pauses": len(stops),
        "pause_reaction_s": {
            "p50": statistics.median(p.reaction_s for p in stops) if stops else math.nan,
            "max": max((p.reaction_s for p in stops), default=math.nan),
        },
        "lost_steps_per_pause": {
            "mean": statistics.fmean(p.lost_steps for p in stops) if stops else math.nan,
            "max": max((p.lost_steps for p in stops), default=0),
        },
        "reference_wall_s": reference["wall_s"],
        "paused_wall_s": paused["wall_s"] - paused["held_s"],
        "overhead": (paused["wall_s"] - paused["held_s"] - reference["wall_s"]) / reference["wall_s"],
        "overhead_per_pause_s": (paused["wall_s"] - paused["held_s"] - reference["wall_s"]) / max(len(stops), 1),
        "reference_step_s": step_s,
        "max_parameter_difference": difference,
        "accuracy": {
            "reference": reference["result"].metrics.get("test_accuracy"),
            "paused": paused["result"].metrics.get("test_accuracy"),
        },
        "shrink": [
            {
                "workers": shape.workers,
                "threads_per_worker": shape.threads_per_worker,
                "steps_per_second": rate,
                "site_kw": shrink["kw"].get(shape.workers),
            }
            for shape, rate in zip(shrunk.shapes, shrunk.segment_rates, strict=True)
        ],
    }


def check_shape(report: dict[str, Any]) -> None:
    """What the smoke run holds itself to: every pause measured, none losing work past its checkpoint, the same
    model, and a shrunk segment at fewer workers with its rate and kW (not timing targets)."""
    problems = []
    if report["pauses"] < 1 or not report["pause_reaction_s"]["max"] > 0:
        problems.append(f"pauses: {report['pauses']}, reaction {report['pause_reaction_s']}")
    if report["lost_steps_per_pause"]["max"] != 0:
        problems.append(f"lost work past a committed checkpoint: {report['lost_steps_per_pause']}")
    if not report["max_parameter_difference"] <= 1e-6:
        problems.append(f"paused model differs by {report['max_parameter_difference']}")
    sizes = [entry["workers"] for entry in report["shrink"]]
    if len(sizes) < 2 or min(sizes) >= max(sizes):
        problems.append(f"no shrunk segment: {report['shrink']}")
    if any(not entry["steps_per_second"] > 0 or entry["site_kw"] is None for entry in report["shrink"]):
        problems.append(f"a shrink rung without its rate or kW: {report['shrink']}")
    if problems:
        raise BenchError("; ".join(problems))


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['steps']} steps, {report['pauses']} pauses: reaction p50 {report['pause_reaction_s']['p50']:.2f} s, "
        f"max {report['pause_reaction_s']['max']:.2f} s; lost steps per pause mean "
        f"{report['lost_steps_per_pause']['mean']:.1f}, max {report['lost_steps_per_pause']['max']}",
        f"uninterrupted {report['reference_wall_s']:.1f} s, paused (held time excluded) "
        f"{report['paused_wall_s']:.1f} s: overhead {report['overhead']:+.1%} "
        f"({report['overhead_per_pause_s']:.1f} s per pause)",
        f"final models: max parameter difference {report['max_parameter_difference']:.2e}; test accuracy "
        f"{report['accuracy']['reference']} uninterrupted, {report['accuracy']['paused']} paused",
    ]
    for entry in report["shrink"]:
        kw = "n/a" if entry["site_kw"] is None else f"{entry['site_kw']:.1f} kW"
        lines.append(
            f"shrink: {entry['workers']} worker(s) x {entry['threads_per_worker']}: "
            f"{entry['steps_per_second']:.1f} steps/s, {kw}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="a short run, for CI: the output shape is checked")
    parser.add_argument("--steps", type=int, default=6000, help="steps of the reference and paused runs")
    parser.add_argument("--pauses", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    steps, pauses, shrink_steps = (600, 1, 600) if args.smoke else (args.steps, args.pauses, args.steps // 2)
    report = measure(steps, pauses, shrink_steps)
    report["smoke"] = args.smoke
    check_shape(report)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
