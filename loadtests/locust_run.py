"""One load-test run: locust in a process of its own against a gateway, the scenario's actions, the result files."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtests import tenant_run
from loadtests.actions import ACTION_LABELS, ActionDriver
from loadtests.gateways import Gateway
from loadtests.plot import Marker, requests_per_region_png
from loadtests.records import read_records
from loadtests.run_settings import RunError, RunSettings, say
from loadtests.scenarios import ActionKind
from loadtests.summary import summarize
from loadtests.summary_text import render_text

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOCUST_START_TIMEOUT_S = 60.0
LOCUST_GRACE_S = 60.0  # beyond -t: stop timeout for users in flight, report writing


def _wait_for_start(records: Path, locust: subprocess.Popen[bytes], log: Path) -> float:
    deadline = time.monotonic() + LOCUST_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if records.exists():
            for line in records.read_text().splitlines():
                data = json.loads(line)
                if data.get("kind") == "start":
                    return float(data["t"])
        if locust.poll() is not None:
            raise RunError(f"locust exited with status {locust.returncode} before starting; see {log}")
        time.sleep(0.1)
    raise RunError(f"locust did not start within {LOCUST_START_TIMEOUT_S:.0f} s; see {log}")


def locust_command(settings: RunSettings, url: str, plan_path: Path, locustfile: Path = LOCUSTFILE) -> list[str]:
    results = settings.results
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        url,
        "-u",
        str(settings.users),
        "-r",
        f"{settings.spawn_rate:g}",
        "-t",
        f"{math.ceil(settings.duration_s)}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(results / "locust"),
        "--csv-full-history",
        "--html",
        str(results / "locust.html"),
        "--only-summary",
        "--gridshift-plan",
        str(plan_path),
    ]


def run(settings: RunSettings, gateway: Gateway) -> int:
    """Run locust against `gateway`, drive the scenario, write and print the summary; the exit status."""
    if importlib.util.find_spec("locust") is None:
        raise RunError("locust is not installed: install the load-test tools with pip install 'gridshift[loadtest]'")
    results = settings.results
    plan_path = results / "plan.json"
    tenants = settings.scenario.tenants
    environment: dict[str, str] | None = None
    if tenants:  # the tenants' users (keys in the environment) instead of the routing-checked ones
        environment = {**os.environ, **tenant_run.prepare(settings, gateway, plan_path)}
    else:
        plan_path.write_text(settings.plan.model_dump_json(indent=2))
    locustfile = tenant_run.TENANT_LOCUSTFILE if tenants else LOCUSTFILE
    records_path = Path(settings.plan.records_path)
    log_path = results / "locust.log"
    driver = ActionDriver(gateway, settings)
    say(f"locust: {settings.users} users, {settings.duration_s:g} s, {settings.user_rps:g} req/s each -> {gateway.url}")
    with log_path.open("w", encoding="utf-8") as log:
        locust = subprocess.Popen(
            locust_command(settings, gateway.url, plan_path, locustfile),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            started_s = _wait_for_start(records_path, locust, log_path)
            driver.run(started_s, locust)
            returncode = locust.wait(timeout=settings.duration_s + LOCUST_GRACE_S)
        except BaseException:
            locust.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                locust.wait(timeout=30)
            if locust.poll() is None:
                locust.kill()
            raise
        finally:
            driver.clear_leftovers()
    if tenants:
        return _tenants_verdict(settings, gateway, plan_path, driver, returncode, log_path)
    summary = summarize(
        read_records(records_path),
        driver.log,
        scenario=settings.scenario.name,
        url=gateway.url,
        users=settings.users,
        duration_s=settings.duration_s,
        max_reaction_s=settings.max_reaction_s,
    )
    summary["locust_exit_status"] = returncode
    text = render_text(summary)
    (results / "summary.json").write_text(json.dumps(summary, indent=2))
    (results / "summary.txt").write_text(text + "\n")
    _write_plot(summary, results / "requests_per_region.png")
    print(text, flush=True)
    say(f"results in {results} (summary.json, summary.txt, requests_per_region.png, locust.html, locust_*.csv)")
    return _exit_status(int(summary["violations"]["total"]), "routing", driver, returncode, log_path)


def _exit_status(violations: int, what: str, driver: ActionDriver, returncode: int, log_path: Path) -> int:
    failed_actions = [a for a in driver.log if not a.ok]
    if failed_actions:
        say(f"FAILED: {len(failed_actions)} grid action(s) failed: {failed_actions[0].detail}")
        return 1
    if violations:
        say(f"FAILED: {violations} {what} violation(s)")
        return 1
    if returncode != 0:
        say(f"FAILED: locust exited with status {returncode}; see {log_path}")
        return 1
    say("passed: zero violations")
    return 0


def _tenants_verdict(
    settings: RunSettings, gateway: Gateway, plan_path: Path, driver: ActionDriver, returncode: int, log_path: Path
) -> int:
    summary = tenant_run.finish(settings, gateway, plan_path, driver.log)
    summary["locust_exit_status"] = returncode
    text = tenant_run.render(summary)
    (settings.results / "summary.json").write_text(json.dumps(summary, indent=2))
    (settings.results / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
    return _exit_status(int(summary["violations"]["total"]), "tenant rule", driver, returncode, log_path)


def _write_plot(summary: dict[str, Any], path: Path) -> None:
    timeline = summary["timeline"]
    markers = [Marker(float(a["at_s"]), ACTION_LABELS[ActionKind(a["kind"])]) for a in summary["actions"]]
    title = f"gridshift load test: {summary['scenario']} ({summary['users']} users)"
    path.write_bytes(requests_per_region_png(title, timeline["t_s"], timeline["requests_per_s"], markers))
