"""`gridshift batch plan|submit|status|pause|resume`: time-shifted batch pipelines, planned and run exactly once."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fleet.errors import GridshiftError
from fleet.times import utc_now_from
from serve_apps.cli.common import add_common_args, fleet_context
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


def _spec(args: argparse.Namespace) -> Any:
    from batch.spec import BatchJobSpec

    def located(path: str) -> str:
        # Absolute local paths: the job's driver runs in another process, with another working directory.
        return path if "://" in path else str(Path(path).resolve())

    spec_data = {
        "job_id": args.job_id or uuid.uuid4().hex[:12],
        "pipeline": args.pipeline,
        "input": located(args.input),
        "input_format": args.input_format,
        "output": located(args.output),
        "output_format": args.output_format,
        "deadline": args.deadline,
        "region": args.region,
        "signal": args.signal,
        "block_rows": args.block_rows,
        "max_workers": args.max_workers,
    }
    return validated_spec(BatchJobSpec, spec_data, "batch")


def cmd_batch_submit(args: argparse.Namespace) -> int:
    from batch.runner import validate_spec
    from batch.submit import submit_job

    # validate_spec before any cluster work: pipeline, input, output.
    return submit(args, _spec(args), verb="batch", validate=validate_spec, submit_job=submit_job, run_local=_run_local)


def _run_local(spec: Any, fleet: Any, args: argparse.Namespace) -> int:
    """The same driver in the foreground, on a local Ray (or the one at --ray-address), with a progress bar."""
    import ray

    from batch.job import run_driver

    print(spec.job_id, flush=True)
    ray.init(address=args.ray_address or "local", namespace="gridshift", log_to_driver=False, include_dashboard=False)
    import ray.data

    # Ray Data's own bars would fight ours for the terminal; its progress still goes to its log file.
    ray.data.DataContext.get_current().enable_progress_bars = False
    bar = ProgressBar(sys.stderr)
    try:
        result = run_driver(spec, fleet, create_control=True, on_progress=bar.update)
    finally:
        bar.close()
        ray.shutdown()
    print(f"done: {result.rows} rows; {result.units_run} units run, {result.units_skipped} already committed")
    return 0


class ProgressBar:
    """One line redrawn in place on a terminal (a line every few seconds elsewhere): rows done of total, rate,
    state and why, and the expected finish (wall) of the rows left at the measured rate."""

    def __init__(self, stream: Any, every_s: float = 5.0) -> None:
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._every_s = every_s
        self._last = 0.0

    def update(self, progress: Any) -> None:
        now = time.monotonic()
        if not self._tty and now - self._last < self._every_s and progress.state == "running":
            return
        self._last = now
        rate = progress.rows_per_second
        left_s = (progress.rows_total - progress.rows_done) / rate if rate > 0 else None
        eta = "" if left_s is None or progress.state == "done" else f"  ~{left_s:,.0f} s left"
        why = f"  ({progress.reason})" if progress.reason and progress.state != "running" else ""
        line = (
            f"{progress.state:<8} {bar(progress.rows_done, progress.rows_total)} "
            f"{progress.rows_done:,}/{progress.rows_total:,} rows  {rate:,.0f} rows/s{eta}{why}"
        )
        if self._tty:
            self._stream.write("\r\x1b[2K" + line[:160])
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


def _status_lines(job: dict[str, Any]) -> list[str]:
    return [
        f"{job['job_id']}  {job['state']:<8} {bar(job['rows_done'], job['rows_total'])} {job['rows_done']:,}/"
        f"{job['rows_total']:,} rows  {job['rows_per_second']:,.1f} rows/s  region {job['region']}",
        *common_lines(job),
    ]


def cmd_batch_status(args: argparse.Namespace) -> int:
    client = gateway_client(args)

    def fetch() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = [client.job(args.job)] if args.job else client.jobs()
        return jobs

    return show_status(args, fetch, _status_lines, "no batch jobs")


def cmd_batch_control(args: argparse.Namespace) -> int:
    client = gateway_client(args)
    token = admin_token()
    answer = client.pause_job(args.job, token) if args.action == "pause" else client.resume_job(args.job, token)
    print(f"{answer['requested']} requested for {answer['job_id']}: no new input block starts once it takes effect")
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
    submit.add_argument("--input", required=True, help="file or folder: a local path or a URI (s3://, gs://)")
    submit.add_argument("--input-format", choices=("text", "jsonl", "csv", "parquet"), help="default: by suffix")
    submit.add_argument("--output", required=True, help="output folder: data files, manifest, commit records")
    submit.add_argument("--output-format", choices=("parquet", "jsonl"), default="parquet")
    submit.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline on the control clock")
    submit.add_argument("--region", required=True)
    submit.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    submit.add_argument(
        "--block-rows", type=int, help="rows per input block, the pause and commit unit (default: auto)"
    )
    submit.add_argument("--max-workers", type=int, default=2, help="most workers a pipeline stage runs")
    submit.add_argument("--job-id", help="job id (default: random)")
    add_submission_args(submit, "run the driver here, in the foreground, with a bar")
    submit.set_defaults(func=cmd_batch_submit)
    add_status_and_control(
        batch_verbs,
        "state, progress and expected finish of batch jobs",
        cmd_batch_status,
        "{action} a job at its next shard boundary",
        cmd_batch_control,
    )
