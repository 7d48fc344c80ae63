"""`gridshift train submit|status|pause|resume`: Ray Train jobs as flexible load, paused at checkpoints and shrunk by
the grid, resumed from their latest checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fleet.errors import GridshiftError
from serve_apps.cli.jobs import (
    add_status_and_control,
    add_submission_args,
    admin_token,
    bar,
    common_lines,
    gateway_client,
    show_status,
    submit,
    validated_spec,
)


def _spec(args: argparse.Namespace) -> Any:
    from training.spec import TrainingJobSpec, new_job_id

    try:
        config = json.loads(args.config) if args.config else {}
    except json.JSONDecodeError as error:
        raise GridshiftError(f"--config: not JSON ({error})") from None
    storage = args.storage if "://" in args.storage else str(Path(args.storage).expanduser().resolve())
    data = {
        "job_id": args.job_id or new_job_id(),
        "trainer": args.trainer,
        "steps": args.steps,
        "config": config,
        "deadline": args.deadline,
        "region": args.region,
        "signal": args.signal,
        "flex_tier": args.flex_tier,
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "worker_cpus": args.worker_cpus,
        "use_gpu": args.use_gpu,
        "checkpoint_every_s": args.checkpoint_every_s,
        "storage_path": storage,
        "step_s": args.step_s,
    }
    return validated_spec(TrainingJobSpec, data, "training")


def cmd_train_submit(args: argparse.Namespace) -> int:
    from training.spec import validate_spec
    from training.submit import submit_job

    # validate_spec before any cluster work: the trainer imports, the storage path is writable.
    return submit(args, _spec(args), verb="train", validate=validate_spec, submit_job=submit_job, run_local=_run_local)


def _run_local(spec: Any, fleet: Any, args: argparse.Namespace) -> int:
    """The same driver in the foreground, on a local Ray (or the one at --ray-address), a status line as it goes."""
    import ray

    from training.job import run_driver

    print(spec.job_id, flush=True)
    ray.init(address=args.ray_address or "local", namespace="gridshift", log_to_driver=False, include_dashboard=False)
    last = [0.0]

    def show(progress: Any) -> None:
        now = time.monotonic()
        if now - last[0] < 2.0 and progress.state == "running":
            return
        last[0] = now
        why = f"  ({progress.reason})" if progress.reason and progress.state != "running" else ""
        print(
            f"{progress.state:<8} {bar(progress.steps_done, progress.steps_total)} {progress.steps_done:,}/"
            f"{progress.steps_total:,} steps committed  {progress.workers} worker(s){why}",
            file=sys.stderr,
            flush=True,
        )

    try:
        result = run_driver(spec, fleet, create_control=True, on_progress=show)
    finally:
        ray.shutdown()
    print(f"done: {result.steps_done} steps, {result.segments} segment(s), {len(result.pauses)} pause(s)")
    print(f"final checkpoint: {result.checkpoint_path}  metrics: {json.dumps(result.metrics, default=str)}")
    return 0


def _status_lines(job: dict[str, Any]) -> list[str]:
    done, total = int(job.get("steps_done") or 0), int(job.get("steps_total") or 0)
    size = f"{job.get('workers', 0)}x{job.get('threads_per_worker', 0)} of {job.get('max_workers', '?')} workers"
    return [
        f"{job['job_id']}  {job['state']:<8} {bar(done, total)} {done:,}/{total:,} steps committed "
        f"(at {job.get('steps_seen', 0):,})  {job.get('steps_per_second', 0.0):,.1f} steps/s  {size}  "
        f"tier {job.get('flex_tier', '?')}  region {job['region']}",
        *common_lines(job),
    ]


def cmd_train_status(args: argparse.Namespace) -> int:
    client = gateway_client(args)

    def fetch() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = [client.training_job(args.job)] if args.job else client.training_jobs()
        return jobs

    return show_status(args, fetch, _status_lines, "no training jobs")


def cmd_train_control(args: argparse.Namespace) -> int:
    answer = gateway_client(args).control_training(args.job, args.action, admin_token())
    print(f"{answer['requested']} requested for {answer['job_id']}: {answer['detail']}")
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift train ...` to the CLI's verbs."""
    train = verbs.add_parser("train", help="Ray Train jobs paused, shrunk and resumed by the grid")
    train_verbs = train.add_subparsers(dest="train_verb", required=True)
    submit = train_verbs.add_parser("submit", help="run a Ray Train loop in good grid windows, resumable")
    submit.add_argument("--trainer", required=True, help="module:function, the Ray Train loop (takes its config)")
    submit.add_argument("--steps", type=int, required=True, help="optimisation steps in all (config['steps'])")
    submit.add_argument("--config", help="more of the loop's config, a JSON object (e.g. '{\"seed\": 1}')")
    submit.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline on the control clock")
    submit.add_argument("--region", required=True)
    submit.add_argument("--flex-tier", type=int, default=1, help="0 never slowed, 1/2/3 accept 10/25/50 %% slowdown")
    submit.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    submit.add_argument("--workers", type=int, default=2, help="Ray Train workers at full size")
    submit.add_argument("--threads-per-worker", type=int, default=1, help="torch threads per worker at full size")
    submit.add_argument("--worker-cpus", type=float, default=0.25, help="CPUs each worker reserves")
    submit.add_argument("--use-gpu", action="store_true", help="one GPU per worker (nccl)")
    submit.add_argument("--checkpoint-every-s", type=float, default=10.0, help="ask for a checkpoint this often")
    submit.add_argument("--storage", default="~/gridshift-training", help="checkpoint storage: path (shared) or URI")
    submit.add_argument("--step-s", type=float, default=0.05, help="estimated seconds per step until measured")
    submit.add_argument("--job-id", help="job id (default: random); the same id resumes its checkpoints")
    add_submission_args(submit, "run the driver here, in the foreground")
    submit.set_defaults(func=cmd_train_submit)
    add_status_and_control(
        train_verbs,
        "state, steps, size and expected finish of training jobs",
        cmd_train_status,
        "{action} a job (at its next step boundary, from a checkpoint)",
        cmd_train_control,
    )
