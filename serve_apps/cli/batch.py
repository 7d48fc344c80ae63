"""`gridshift batch plan|submit|status|pause|resume`: time-shifted batch pipelines, planned and run exactly once."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleet.errors import GridshiftError
from fleet.loaders import load_fleet
from fleet.times import utc_now_from
from serve_apps.admin_token import ADMIN_TOKEN_ENV
from serve_apps.cli.common import add_common_args, fleet_context


def cmd_batch_plan(args: argparse.Namespace) -> int:
    from policies.plan import plan_to_dict
    from policies.plan_forecast import forecast_signal
    from policies.planner import plan_windows

    context = fleet_context(args)
    fleet = context.fleet
    if args.region not in fleet.region_names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(fleet.region_names)}")
    release = int(utc_now_from(args.release).timestamp())
    deadline = int(utc_now_from(args.deadline).timestamp())
    if deadline <= release:
        raise GridshiftError("--deadline must be after --release")
    if args.hours <= 0:
        raise GridshiftError("--hours must be positive")
    slots = list(range(release - release % 3600, deadline, 3600))
    try:
        forecast = forecast_signal(
            context.trace, fleet.region(args.region), args.signal, release, slots, fleet.headroom
        )
    except ValueError as error:
        raise GridshiftError(f"--signal {args.signal}: {error}") from None
    plan = plan_windows(release, deadline, int(args.hours * 3600), slots, forecast, args.signal, now_s=release)
    body = plan_to_dict(plan)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(
        f"{args.signal} plan for {args.hours:g} h in {args.region}, released {body['release']}, due {body['deadline']}"
    )
    for interval in body["intervals"]:
        print(f"  run {interval['start']} -> {interval['end']}")
    unit = body["unit"]
    print(f"expected {body['expected_signal']} {unit} vs {body['run_now_signal']} {unit} running at once")
    print(f"savings {body['savings']} {unit} ({body['savings_pct']} %); {body['reason']}")
    return 0


def _admin_token() -> str:
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise GridshiftError(f"set {ADMIN_TOKEN_ENV} to the gateway's admin token (gridshift up prints it)")
    return token


def _client(args: argparse.Namespace) -> Any:
    from serve_apps.client import GridshiftClient

    return GridshiftClient(args.url)


def cmd_batch_submit(args: argparse.Namespace) -> int:
    from batch.spec import BatchJobSpec

    spec_data = {
        "job_id": args.job_id or uuid.uuid4().hex[:12],
        "pipeline": args.pipeline,
        # Absolute paths: the job may run in another process with another working directory.
        "input": str(Path(args.input).resolve()),
        "output": str(Path(args.output).resolve()),
        "deadline": args.deadline,
        "region": args.region,
        "signal": args.signal,
        "shard_rows": args.shard_rows,
    }
    try:
        spec = BatchJobSpec.model_validate(spec_data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise GridshiftError(f"invalid batch job: {fields}") from None
    if not args.local:
        answer = _client(args).submit_job(spec.model_dump(mode="json"), _admin_token())
        print(answer["job_id"])
        return 0
    import ray

    from batch.driver import run_local

    fleet = load_fleet(args.fleet)
    print(spec.job_id, flush=True)
    ray.init(address=args.ray_address or "local", namespace="gridshift", log_to_driver=False, include_dashboard=False)
    try:
        result = run_local(spec, fleet)
    finally:
        ray.shutdown()
    print(f"done: {result.rows} rows, {result.shards_run} shards run, {result.shards_skipped} already committed")
    return 0


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = 0 if total <= 0 else round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def cmd_batch_status(args: argparse.Namespace) -> int:
    client = _client(args)
    jobs = [client.job(args.job)] if args.job else client.jobs()
    if args.json:
        print(json.dumps({"jobs": jobs}, indent=2))
        return 0
    if not jobs:
        print("no batch jobs")
    for job in jobs:
        print(
            f"{job['job_id']}  {job['state']:<8} {_bar(job['rows_done'], job['rows_total'])} "
            f"{job['rows_done']}/{job['rows_total']} rows  region {job['region']}"
        )
        if job["reason"]:
            print(f"  why: {job['reason']}")
        if job["state"] == "paused" and job["expected_resume"]:
            print(f"  expected resume: {job['expected_resume']}")
        track = "on track" if job["on_track"] else "AT RISK"
        print(f"  expected finish: {job['expected_finish'] or '-'}  deadline: {job['deadline']}  ({track})")
    return 0


def cmd_batch_control(args: argparse.Namespace) -> int:
    client = _client(args)
    token = _admin_token()
    answer = client.pause_job(args.job, token) if args.action == "pause" else client.resume_job(args.job, token)
    print(f"{answer['requested']} requested for {answer['job_id']}: it takes effect at the next shard boundary")
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift batch ...` to the CLI's verbs."""
    batch = verbs.add_parser("batch", help="time-shifted batch pipelines")
    batch_verbs = batch.add_subparsers(dest="batch_verb", required=True)
    plan = batch_verbs.add_parser("plan", help="when a job of H hours would run, from the forecast at release")
    plan.add_argument("--region", required=True)
    plan.add_argument("--release", required=True, help="ISO-8601 UTC release time")
    plan.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline")
    plan.add_argument("--hours", type=float, required=True, help="estimated work, hours")
    plan.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    add_common_args(plan)
    plan.set_defaults(func=cmd_batch_plan)

    submit = batch_verbs.add_parser("submit", help="run a Ray Data pipeline in good grid windows, exactly once")
    submit.add_argument("--pipeline", required=True, help="module:function taking (Dataset, knobs)")
    submit.add_argument("--input", required=True, help=".txt (a row a line) or .jsonl input")
    submit.add_argument("--output", required=True, help="output folder (part files and ledger)")
    submit.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline on the control clock")
    submit.add_argument("--region", required=True)
    submit.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    submit.add_argument("--shard-rows", type=int, default=128, help="rows per shard (pause and commit unit)")
    submit.add_argument("--job-id", help="job id (default: random)")
    submit.add_argument("--url", default="http://127.0.0.1:8000", help="gateway to submit to")
    submit.add_argument("--local", action="store_true", help="run the driver here instead of in the cluster")
    submit.add_argument("--ray-address", help="with --local: join this Ray cluster (default: start one)")
    submit.add_argument("--fleet", help="with --local: fleet YAML (default: the packaged fleet)")
    submit.set_defaults(func=cmd_batch_submit)

    status = batch_verbs.add_parser("status", help="state, progress and expected finish of batch jobs")
    status.add_argument("job", nargs="?", help="one job (default: all)")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_batch_status)
    for action in ("pause", "resume"):
        control = batch_verbs.add_parser(action, help=f"{action} a job at its next shard boundary")
        control.add_argument("job")
        control.add_argument("--url", default="http://127.0.0.1:8000")
        control.set_defaults(func=cmd_batch_control, action=action)
