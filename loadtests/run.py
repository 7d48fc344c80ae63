"""Load-test runner: starts (or finds) a gateway, runs locust headless on a scenario, drives its grid changes and
writes the routing summary. Exits 1 on any routing violation, 2 on bad arguments.

    python -m loadtests.run --scenario smoke|steady|dr_event|region_kill [--url URL | --fake-gateway]
        [--users N] [--duration S] [--results DIR]

Without --url it starts the embedded default fleet itself (`loadtests.embedded_gateway`, a child process that
owns Ray), holding the grid at the 2022-09-07T01:00Z heat-wave peak with WAN emulation on. Locust runs in a
child process too: this module imports neither Ray nor locust. docs/loadtests.md explains the rules and reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.embedded_gateway import PREFIX, TOKEN_ENV
from loadtests.plot import Marker, requests_per_region_png
from loadtests.scenarios import (
    MAX_DURATION_S,
    MAX_SPAWN_RATE,
    MAX_USER_RPS,
    MAX_USERS,
    MIN_ACTION_DURATION_S,
    PEAK,
    SCENARIOS,
    ActionKind,
    LoadPlan,
    Scenario,
    StagePlan,
    check_caps,
    check_loopback,
)
from loadtests.summary import ActionRecord, read_records, render_text, summarize

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
GATEWAY_START_TIMEOUT_S = 420.0  # Ray, Serve and four model replicas on two cores
LOCUST_START_TIMEOUT_S = 60.0
LOCUST_GRACE_S = 60.0  # beyond -t: stop timeout for users in flight, report writing
ADMIN_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 60.0
ACTION_LABELS = {
    ActionKind.POST_DR_EVENT: "DR ON",
    ActionKind.CLEAR_DR_EVENT: "DR OFF",
    ActionKind.KILL_REGION: "KILL",
}


class RunError(Exception):
    """The run could not be carried out (gateway did not start, locust failed): exit status 1."""


# Gateways ----------------------------------------------------------------------------------------------------


class Gateway:
    """Where the load goes. The base class is a gateway given by URL: nothing to start or stop, no kill."""

    def __init__(self, url: str, admin_token: str | None) -> None:
        self.url = url
        self.admin_token = admin_token

    def kill_region(self, region: str) -> str:
        raise RunError(f"cannot kill {region}: region kills need the embedded gateway (run without --url)")

    def stop(self) -> None:
        return None


class ChildGateway(Gateway):
    """A gateway this runner started as a child process, reading its protocol lines from stdout."""

    def __init__(
        self, command: list[str], url: str, admin_token: str, log_path: Path, ready_prefix: str | None
    ) -> None:
        super().__init__(url, admin_token)
        self._log = log_path.open("a", encoding="utf-8")
        environment = {**os.environ, TOKEN_ENV: admin_token}
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=environment,
            start_new_session=True,  # Ctrl-C in the terminal reaches the runner, which stops the child in order
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._ready_prefix = ready_prefix

    def _read_stdout(self) -> None:
        stdout = self._process.stdout
        if stdout is None:
            return
        for line in stdout:
            self._log.write(line)
            self._log.flush()
            if line.startswith(PREFIX):
                self._lines.put(line[len(PREFIX) :].strip())

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        if self._ready_prefix is not None:
            self._expect(self._ready_prefix, deadline)
        while not _healthy(self.url):
            if self._process.poll() is not None:
                raise RunError(f"the gateway exited with status {self._process.returncode}; see {self._log.name}")
            if time.monotonic() > deadline:
                raise RunError(f"the gateway did not answer /healthz within {timeout_s:.0f} s; see {self._log.name}")
            time.sleep(0.5)

    def _expect(self, prefix: str, deadline: float) -> str:
        while True:
            if self._process.poll() is not None and self._lines.empty():
                raise RunError(f"the gateway exited with status {self._process.returncode}; see {self._log.name}")
            try:
                line = self._lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RunError(f"the gateway did not say {prefix!r} in time; see {self._log.name}") from None
                continue
            if line.startswith(prefix):
                return line
            if line.startswith("error"):
                raise RunError(f"the gateway refused a command: {line}")

    def _send(self, command: str) -> None:
        stdin = self._process.stdin
        if stdin is None or self._process.poll() is not None:
            raise RunError("the gateway process is gone")
        stdin.write(command + "\n")
        stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, RunError):
            self._send("stop")
        try:
            self._process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


class EmbeddedGateway(ChildGateway):
    """The default fleet on a local Ray cluster in a child process (loadtests.embedded_gateway)."""

    def kill_region(self, region: str) -> str:
        self._send(f"kill {region}")
        answer = self._expect(f"killed {region}", time.monotonic() + KILL_TIMEOUT_S)
        killed = answer.split()[-1]
        if killed == "0":
            raise RunError(f"no replica of {region} was found to kill")
        return f"{killed} replica(s) killed"


class FakeGateway(ChildGateway):
    """The deliberately wrong gateway (loadtests.fake_gateway): always serves at the origin."""

    def kill_region(self, region: str) -> str:
        raise RunError(f"cannot kill {region}: the fake gateway has no regions to kill")

    def stop(self) -> None:
        self._process.terminate()  # an aiohttp server: SIGTERM is its clean stop
        super().stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Admin API ---------------------------------------------------------------------------------------------------


def _admin(gateway: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    if not gateway.admin_token:
        raise RunError(f"DR events need the admin token: set {TOKEN_ENV}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{gateway.url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {gateway.admin_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as error:
        raise RunError(f"{method} {path}: HTTP {error.code}: {error.read()[:300]!r}") from None
    except (OSError, ValueError) as error:
        raise RunError(f"{method} {path}: {error}") from None


# The run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    scenario: Scenario
    users: int
    spawn_rate: float
    duration_s: float
    user_rps: float
    results: Path
    fleet_path: str | None
    event_region: str
    event_level: int
    max_reaction_s: float
    plan: LoadPlan


class ActionDriver:
    """Carries out a scenario's grid changes at their times, logging when each was sent and acknowledged."""

    def __init__(self, gateway: Gateway, settings: RunSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.log: list[ActionRecord] = []
        self._open_events: list[str] = []

    def run(self, started_s: float, locust: subprocess.Popen[bytes]) -> None:
        for action in sorted(self.settings.scenario.actions, key=lambda a: a.at_fraction):
            due = started_s + action.at_fraction * self.settings.duration_s
            while time.time() < due:
                if locust.poll() is not None:
                    return  # locust ended early (refused or crashed): nothing left to drive
                time.sleep(min(0.05, max(0.0, due - time.time())))
            self.perform(action.kind)

    def perform(self, kind: ActionKind) -> None:
        region, level = self.settings.event_region, self.settings.event_level
        sent = time.time()
        detail, ok = "", True
        try:
            if kind is ActionKind.POST_DR_EVENT:
                event = _admin(self.gateway, "POST", "/v1/admin/events", {"region": region, "level": level})
                detail = str(event["event"]["event_id"])
                self._open_events.append(detail)
            elif kind is ActionKind.CLEAR_DR_EVENT:
                if self._open_events:
                    detail = self._open_events.pop()
                    _admin(self.gateway, "DELETE", f"/v1/admin/events/{detail}")
            else:
                detail = self.gateway.kill_region(region)
        except (RunError, KeyError, TypeError) as error:
            detail, ok = str(error), False
        acked = time.time()
        self.log.append(
            ActionRecord(kind, region, sent, acked, ok, detail, level if kind is ActionKind.POST_DR_EVENT else None)
        )
        _say(f"{kind.value} {region}: {'ok' if ok else 'FAILED'} {detail} ({acked - sent:.2f} s)")

    def clear_leftovers(self) -> None:
        """Clear events a cut-short run left posted, so the gateway is left as found."""
        while self._open_events:
            event_id = self._open_events.pop()
            with contextlib.suppress(RunError):
                _admin(self.gateway, "DELETE", f"/v1/admin/events/{event_id}")


def _say(message: str) -> None:
    print(f"loadtest: {message}", flush=True)


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


def locust_command(settings: RunSettings, url: str, plan_path: Path) -> list[str]:
    results = settings.results
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
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
    results = settings.results
    plan_path = results / "plan.json"
    plan_path.write_text(settings.plan.model_dump_json(indent=2))
    records_path = Path(settings.plan.records_path)
    log_path = results / "locust.log"
    driver = ActionDriver(gateway, settings)
    _say(
        f"locust: {settings.users} users, {settings.duration_s:g} s, {settings.user_rps:g} req/s each -> {gateway.url}"
    )
    with log_path.open("w", encoding="utf-8") as log:
        locust = subprocess.Popen(
            locust_command(settings, gateway.url, plan_path), stdout=log, stderr=subprocess.STDOUT
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
    _say(f"results in {results} (summary.json, summary.txt, requests_per_region.png, locust.html, locust_*.csv)")
    violations = int(summary["violations"]["total"])
    failed_actions = [a for a in driver.log if not a.ok]
    if failed_actions:
        _say(f"FAILED: {len(failed_actions)} grid action(s) failed: {failed_actions[0].detail}")
        return 1
    if violations:
        _say(f"FAILED: {violations} routing violation(s)")
        return 1
    if returncode != 0:
        _say(f"FAILED: locust exited with status {returncode}; see {log_path}")
        return 1
    _say("passed: zero violations")
    return 0


def _write_plot(summary: dict[str, Any], path: Path) -> None:
    timeline = summary["timeline"]
    markers = [Marker(float(a["at_s"]), ACTION_LABELS[ActionKind(a["kind"])]) for a in summary["actions"]]
    title = f"gridshift load test: {summary['scenario']} ({summary['users']} users)"
    path.write_bytes(requests_per_region_png(title, timeline["t_s"], timeline["requests_per_s"], markers))


# Command line ------------------------------------------------------------------------------------------------


def _weights(text: str) -> dict[str, float]:
    """`a=3,b=1` into {'a': 3.0, 'b': 1.0}."""
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected name=weight, got {item!r}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    return weights


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run a gridshift load-test scenario headless and check routing on every answer.",
    )
    cli.add_argument("--scenario", required=True, choices=sorted(SCENARIOS), help="what to run")
    target = cli.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running gateway on loopback (default: start the embedded default fleet)")
    target.add_argument("--fake-gateway", action="store_true", help="run against a deliberately wrong gateway")
    cli.add_argument("--users", type=int, help=f"concurrent users, at most {MAX_USERS} (default: the scenario's)")
    cli.add_argument("--duration", type=float, help=f"seconds, at most {MAX_DURATION_S:g} (default: the scenario's)")
    cli.add_argument("--spawn-rate", type=float, help=f"users started per second, at most {MAX_SPAWN_RATE:g}")
    cli.add_argument("--rate-per-user", type=float, help=f"requests per second per user, at most {MAX_USER_RPS:g}")
    cli.add_argument("--results", type=Path, help="results folder (default: results/<scenario>-<UTC time>)")
    cli.add_argument("--fleet", help="the gateway's fleet YAML (default: the packaged fleet)")
    cli.add_argument("--mix", type=_weights, help="workload class weights, e.g. realtime=3,tolerant=7")
    cli.add_argument("--origins", type=_weights, help="origin weights, e.g. us-west-1=3,us-east-1=1 (default: even)")
    cli.add_argument("--event-region", default="us-west-2", help="region of the DR event or kill (default us-west-2)")
    cli.add_argument("--event-level", type=int, default=3, choices=(1, 2, 3), help="DR event level (default 3)")
    cli.add_argument("--max-reaction-s", type=float, default=2.0, help="reaction time limit, s (default 2)")
    cli.add_argument("--start", default=PEAK, help=f"embedded gateway: trace time the grid is held at (default {PEAK})")
    cli.add_argument("--no-wan-emulation", action="store_true", help="embedded gateway: no emulated round trips")
    cli.add_argument("--port", type=int, help="port for the gateway this runner starts (default: a free one)")
    return cli


def settings_from(args: argparse.Namespace, cli: argparse.ArgumentParser) -> RunSettings:
    scenario = SCENARIOS[args.scenario]
    users = args.users if args.users is not None else scenario.users
    duration_s = args.duration if args.duration is not None else scenario.duration_s
    user_rps = args.rate_per_user if args.rate_per_user is not None else scenario.user_rps
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else float(min(users, MAX_SPAWN_RATE))
    try:
        check_caps(users, duration_s, spawn_rate, user_rps)
    except ValueError as error:
        cli.error(str(error))
    if scenario.actions and duration_s < MIN_ACTION_DURATION_S:
        cli.error(f"scenario {scenario.name} changes the grid mid-run: --duration must be >= {MIN_ACTION_DURATION_S:g}")
    if args.max_reaction_s <= 0:
        cli.error("--max-reaction-s must be positive")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = args.results or Path("results") / f"{scenario.name}-{stamp}"
    results.mkdir(parents=True, exist_ok=True)
    records = results / "records.jsonl"
    records.unlink(missing_ok=True)
    plan_fields: dict[str, Any] = {
        "scenario": scenario.name,
        "fleet_path": args.fleet,
        "records_path": str(records),
        "user_rps": user_rps,
        "stages": [
            StagePlan(until_fraction=s.until_fraction, users_fraction=s.users_fraction) for s in scenario.stages
        ],
    }
    if args.mix:
        plan_fields["workload_mix"] = args.mix
    if args.origins:
        plan_fields["origins"] = args.origins
    try:
        plan = LoadPlan(**plan_fields)
    except ValueError as error:
        cli.error(str(error))
    return RunSettings(
        scenario,
        users,
        spawn_rate,
        duration_s,
        user_rps,
        results,
        args.fleet,
        args.event_region,
        args.event_level,
        args.max_reaction_s,
        plan,
    )


@contextlib.contextmanager
def gateway_for(args: argparse.Namespace, settings: RunSettings) -> Iterator[Gateway]:
    if args.url:
        yield Gateway(check_loopback(args.url), os.environ.get(TOKEN_ENV))
        return
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    log = settings.results / "gateway.log"
    fleet_args = ["--fleet", args.fleet] if args.fleet else []
    child: ChildGateway
    if args.fake_gateway:
        _say(f"starting the deliberately wrong gateway at {url}")
        command = [sys.executable, "-m", "loadtests.fake_gateway", "--port", str(port), "--at", args.start, *fleet_args]
        child = FakeGateway(command, url, token, log, ready_prefix=None)
    else:
        _say(f"starting the embedded default fleet at {url} (Ray, Serve, four model replicas: about a minute)")
        command = [sys.executable, "-m", "loadtests.embedded_gateway", "--port", str(port), "--start", args.start]
        command += fleet_args + (["--no-wan-emulation"] if args.no_wan_emulation else [])
        child = EmbeddedGateway(command, url, token, log, ready_prefix="ready")
    try:
        child.wait_ready(GATEWAY_START_TIMEOUT_S)
        _say(f"gateway ready at {url}")
        yield child
    finally:
        _say("stopping the gateway")
        child.stop()


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.url:
        try:
            check_loopback(args.url)
        except ValueError as error:
            cli.error(str(error))
    scenario = SCENARIOS[args.scenario]
    if scenario.kills_region and (args.url or args.fake_gateway):
        cli.error(f"scenario {scenario.name} kills Ray Serve replicas: it needs the embedded gateway (no --url)")
    if scenario.needs_admin and args.url and not os.environ.get(TOKEN_ENV):
        cli.error(f"scenario {scenario.name} posts DR events: set {TOKEN_ENV} to the gateway's admin token")
    settings = settings_from(args, cli)
    try:
        with gateway_for(args, settings) as gateway:
            return run(settings, gateway)
    except RunError as error:
        _say(f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
