"""What `gridshift batch` and `gridshift train` share: the spec's validation message, submission (as a Ray Job, or
the driver in the foreground), the status view (plain, JSON or redrawn until every job ends), pause and resume, and
the arguments those take."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fleet.config import FleetConfig
from fleet.errors import GridshiftError
from fleet.loaders import format_validation_errors, load_fleet
from policies.training_jobs import FINISHED
from serve_apps.admin_token import ADMIN_TOKEN_ENV

Spec = TypeVar("Spec", bound=BaseModel)
Job = dict[str, Any]


def admin_token() -> str:
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise GridshiftError(f"set {ADMIN_TOKEN_ENV} to the gateway's admin token (gridshift up prints it)")
    return token


def gateway_client(args: argparse.Namespace) -> Any:
    from serve_apps.client import GridshiftClient

    return GridshiftClient(args.url)


def validated_spec(model: type[Spec], data: dict[str, Any], kind: str) -> Spec:
    """The spec, or a GridshiftError naming every bad field and why."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise GridshiftError(f"invalid {kind} job:\n{format_validation_errors(error)}") from None


def submit(
    args: argparse.Namespace,
    spec: Any,
    *,
    verb: str,
    validate: Callable[[Any], None],
    submit_job: Callable[..., str],
    run_local: Callable[[Any, FleetConfig, argparse.Namespace], int],
) -> int:
    """Check the region and the spec before any cluster work, then submit it as a Ray Job (printing its id and
    where to follow it) or, with --local, run its driver here."""
    fleet = load_fleet(args.fleet)
    if args.region not in fleet.region_names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(fleet.region_names)}")
    validate(spec)
    if args.local:
        return run_local(spec, fleet, args)
    submission = submit_job(
        spec, fleet, address=args.address, working_dir=args.working_dir, requirements=args.requirements
    )
    print(submission)
    where = f" --address {args.address}" if args.address else ""
    print(
        f"  logs: ray job logs {submission}{where}   progress: gridshift {verb} status {submission} --watch",
        file=sys.stderr,
    )
    return 0


def show_status(
    args: argparse.Namespace, fetch: Callable[[], list[Job]], lines: Callable[[Job], list[str]], none: str
) -> int:
    """The jobs as JSON, as text, or (--watch) redrawn every --every seconds until every one has ended."""
    if args.json:
        print(json.dumps({"jobs": fetch()}, indent=2))
        return 0

    def text(jobs: list[Job]) -> str:
        return "\n".join(line for job in jobs for line in lines(job)) if jobs else none

    if not args.watch:
        print(text(fetch()))
        return 0
    from serve_apps.cli.live_view import LiveView

    try:
        # Redrawn in place on a terminal (rich); elsewhere, one plain block per refresh.
        with LiveView() as view:
            while True:
                jobs = fetch()
                view.show(time.strftime("%H:%M:%S") + "\n" + text(jobs))
                if jobs and all(job["state"] in FINISHED for job in jobs):
                    return 0
                time.sleep(args.every)
    except KeyboardInterrupt:
        return 0


def bar(done: int, total: int, width: int = 24) -> str:
    filled = 0 if total <= 0 else round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def common_lines(job: Job) -> list[str]:
    """The lines under a job's first: why it is as it is, its tier and tenant, resume and finish, its Ray Job."""
    lines = [f"  why: {job['reason']}"] if job.get("reason") else []
    if job.get("flex_tier") is not None or job.get("tenant_id"):
        did = ", ".join(job.get("effects") or []) or "nothing"  # docs/tenants.md#flexibility-tiers
        lines.append(f"  tier {job.get('flex_tier', '-')}  tenant {job.get('tenant_id') or '-'}  the grid: {did}")
    if job["state"] == "paused" and job.get("expected_resume"):
        lines.append(f"  expected resume: {job['expected_resume']}")
    if job.get("deadline"):
        track = "on track" if job.get("on_track") else "AT RISK"
        lines.append(f"  expected finish: {job.get('expected_finish') or '-'}  deadline: {job['deadline']}  ({track})")
    if job.get("ray_status"):
        lines.append(f"  ray job: {job['ray_status']}")
    return lines


def add_submission_args(submit_parser: argparse.ArgumentParser, local_help: str) -> None:
    """Where a job runs: the fleet, the Jobs API, the code and requirements it takes, or --local."""
    submit_parser.add_argument("--fleet", help="fleet YAML (default: the packaged fleet)")
    submit_parser.add_argument(
        "--address", help="Ray Jobs API (the dashboard's URL, e.g. http://127.0.0.1:8265); default: this machine's"
    )
    submit_parser.add_argument(
        "--working-dir", help="upload this folder with the job and put it on its path (your code)"
    )
    submit_parser.add_argument("--requirements", help="requirements file installed for the job (pip)")
    submit_parser.add_argument("--local", action="store_true", help=local_help)
    submit_parser.add_argument(
        "--ray-address", help="with --local: join this Ray cluster (GCS address; default: start one)"
    )


def add_status_and_control(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    status_help: str,
    status: Callable[[argparse.Namespace], int],
    control_help: str,
    control: Callable[[argparse.Namespace], int],
) -> None:
    """`status [JOB] [--json] [--watch]` and `pause|resume JOB`, against the gateway at --url."""
    status_parser = verbs.add_parser("status", help=status_help)
    status_parser.add_argument("job", nargs="?", help="one job (default: all)")
    status_parser.add_argument("--url", default="http://127.0.0.1:8000")
    status_parser.add_argument("--json", action="store_true")
    status_parser.add_argument("--watch", action="store_true", help="redraw until every job is done, failed or stopped")
    status_parser.add_argument("--every", type=float, default=1.0, help="with --watch: seconds between refreshes")
    status_parser.set_defaults(func=status)
    for action in ("pause", "resume"):
        control_parser = verbs.add_parser(action, help=control_help.format(action=action))
        control_parser.add_argument("job")
        control_parser.add_argument("--url", default="http://127.0.0.1:8000")
        control_parser.set_defaults(func=control, action=action)
