"""`gridshift train submit|status|pause|resume`: Ray Train jobs as flexible load, paused at checkpoints and shrunk by
the grid, resumed from their latest checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleet.errors import GridshiftError
from fleet.loaders import load_fleet
from serve_apps.cli.batch import _admin_token, _bar, _tier_line


def _client(args: argparse.Namespace) -> Any:
    from serve_apps.client import GridshiftClient

    return GridshiftClient(args.url)


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
    try:
        return TrainingJobSpec.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise GridshiftError(f"invalid training job: {fields}") from None


def cmd_train_submit(args: argparse.Namespace) -> int:
    from training.spec import validate_spec

    spec = _spec(args)
    fleet = load_fleet(args.fleet)
    if args.region not in fleet.region_names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(fleet.region_names)}")
    validate_spec(spec)  # before any cluster work: the trainer imports, the storage path is writable
    if args.local:
        return _run_local(spec, fleet, args)
    from training.submit import submit_job

    submission = submit_job(
        spec, fleet, address=args.address, working_dir=args.working_dir, requirements=args.requirements
    )
    print(submission)
    where = f" --address {args.address}" if args.address else ""
    print(
        f"  logs: ray job logs {submission}{where}   progress: gridshift train status {submission} --watch",
        file=sys.stderr,
    )
    return 0


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
            f"{progress.state:<8} {_bar(progress.steps_done, progress.steps_total)} {progress.steps_done:,}/"
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
    lines = [
        f"{job['job_id']}  {job['state']:<8} {_bar(done, total)} {done:,}/{total:,} steps committed "
        f"(at {job.get('steps_seen', 0):,})  {job.get('steps_per_second', 0.0):,.1f} steps/s  {size}  "
        f"tier {job.get('flex_tier', '?')}  region {job['region']}"
    ]
    if job.get("reason"):
        lines.append(f"  why: {job['reason']}")
    lines += _tier_line(job)
    if job["state"] == "paused" and job.get("expected_resume"):
        lines.append(f"  expected resume: {job['expected_resume']}")
    if job.get("deadline"):
        track = "on track" if job.get("on_track") else "AT RISK"
        lines.append(f"  expected finish: {job.get('expected_finish') or '-'}  deadline: {job['deadline']}  ({track})")
    if job.get("ray_status"):
        lines.append(f"  ray job: {job['ray_status']}")
    return lines


def cmd_train_status(args: argparse.Namespace) -> int:
    client = _client(args)

    def fetch() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = [client.training_job(args.job)] if args.job else client.training_jobs()
        return jobs

    def text(jobs: list[dict[str, Any]]) -> str:
        return "\n".join(line for job in jobs for line in _status_lines(job)) if jobs else "no training jobs"

    if args.json:
        print(json.dumps({"jobs": fetch()}, indent=2))
        return 0
    if not args.watch:
        print(text(fetch()))
        return 0
    tty = sys.stdout.isatty()
    try:
        while True:
            jobs = fetch()
            # Redraw in place on a terminal; elsewhere, one block per refresh.
            print(("\x1b[H\x1b[2J" if tty else "") + time.strftime("%H:%M:%S ") + "\n" + text(jobs), flush=True)
            if jobs and all(job["state"] in ("done", "failed", "stopped") for job in jobs):
                return 0
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0


def cmd_train_control(args: argparse.Namespace) -> int:
    answer = _client(args).control_training(args.job, args.action, _admin_token())
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
    submit.add_argument("--fleet", help="fleet YAML (default: the packaged fleet)")
    submit.add_argument("--address", help="Ray Jobs API (the dashboard's URL); default: this machine's cluster")
    submit.add_argument("--working-dir", help="upload this folder with the job and put it on its path (your code)")
    submit.add_argument("--requirements", help="requirements file installed for the job (pip)")
    submit.add_argument("--local", action="store_true", help="run the driver here, in the foreground")
    submit.add_argument("--ray-address", help="with --local: join this Ray cluster (GCS address; default: start one)")
    submit.set_defaults(func=cmd_train_submit)

    status = train_verbs.add_parser("status", help="state, steps, size and expected finish of training jobs")
    status.add_argument("job", nargs="?", help="one job (default: all)")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", action="store_true", help="redraw until every job is done, failed or stopped")
    status.add_argument("--every", type=float, default=1.0, help="with --watch: seconds between refreshes")
    status.set_defaults(func=cmd_train_status)
    for action in ("pause", "resume"):
        control = train_verbs.add_parser(action, help=f"{action} a job (at its next step boundary, from a checkpoint)")
        control.add_argument("job")
        control.add_argument("--url", default="http://127.0.0.1:8000")
        control.set_defaults(func=cmd_train_control, action=action)
