"""Locust users and load shape for gridshift: real-time and tolerant callers whose every answer is routing-checked.

Run it through `python -m loadtests.run` (which starts the gateway, drives grid changes and writes the
report), or directly: `locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 30s --host http://127.0.0.1:8000
[--gridshift-plan plan.json]`. It must never import Ray (`serve_apps`, `policies.actors.control`): Ray imported before
locust's gevent patching breaks gevent, so locust always runs in a process of its own.
"""

from __future__ import annotations

import json
import logging
import random
import time
import weakref
from pathlib import Path
from typing import IO, Any, ClassVar

import gevent
import requests
from locust import HttpUser, LoadTestShape, events, task
from locust.env import Environment

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, load_rtt_matrix
from loadtests.azure_trace import TraceRequest, load_trace_requests, schedule
from loadtests.checker import Check, Observation, Outcome, RoutingChecker, parse_attempts, parse_version
from loadtests.control_view import ControlView, StateHistory, view_from_regions_body
from loadtests.locust_hooks import listens_to
from loadtests.records import RequestRecord
from loadtests.scenarios import LoadPlan, check_caps, check_loopback, users_at

logger = logging.getLogger("gridshift.loadtest")

TEXTS = (
    "the grid is stressed tonight",
    "batch jobs can wait for a greener hour",
    "route latency-tolerant inference to the region with headroom",
    "a heat wave drives air conditioning load to a record peak",
    "demand response asks large loads to step down",
)
REQUEST_TIMEOUT_S = 30.0
FETCH_TRIES = 3  # reads of /v1/regions for a version newer than any seen
# A suspected violation waits for fresh health evidence: at least one gateway refresh (0.2 s by default) plus
# two polls, so a region the replica had just marked down shows in the control state, and at most a second.
RECHECK_WAIT_S = 0.3
RECHECK_MAX_S = 1.0


class LoadRun:
    """Everything one locust environment shares: the plan, the checker, the polled control states, the records."""

    _runs: ClassVar[weakref.WeakKeyDictionary[Environment, LoadRun]] = weakref.WeakKeyDictionary()

    def __init__(self, environment: Environment, plan: LoadPlan, fleet: FleetConfig, host: str) -> None:
        self.environment = environment
        self.plan = plan
        self.fleet = fleet
        self.host = host
        self.checker = RoutingChecker(fleet, load_rtt_matrix(fleet.latency), allow_rejections=plan.allow_overload)
        # Open-loop replay: the whole schedule, fixed at start from the trace, the rate and the run's length.
        self.trace_schedule: list[TraceRequest] = []
        self.history = StateHistory()
        self.poll_errors = 0
        self._session = requests.Session()
        self._records: IO[str] | None = None
        self._poller: Any = None
        origins = plan.origins or dict.fromkeys(fleet.region_names, 1.0)
        unknown = sorted(set(origins) - set(fleet.region_names))
        if unknown:
            raise ValueError(f"origins {unknown} are not regions of fleet {fleet.name!r}")
        self._origins = list(origins)
        self._origin_weights = list(origins.values())

    @classmethod
    def of(cls, environment: Environment) -> LoadRun:
        run = cls.find(environment)
        if run is None:
            raise RuntimeError("no gridshift load run for this environment: start locust with this locustfile")
        return run

    @classmethod
    def find(cls, environment: Environment) -> LoadRun | None:
        return cls._runs.get(environment)

    @classmethod
    def install(cls, run: LoadRun) -> None:
        cls._runs[run.environment] = run

    # Lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        path = Path(self.plan.records_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._records = path.open("a", encoding="utf-8")
        self._write({"kind": "start", "t": time.time(), "scenario": self.plan.scenario, "host": self.host})
        self.poll_once()  # a first state before the first answer arrives
        self._poller = gevent.spawn(self._poll_forever)

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.kill(block=False)
            self._poller = None
        if self._records is not None:
            self._write(
                {"kind": "stop", "t": time.time(), "polls": self.history.polls, "poll_errors": self.poll_errors}
            )
            self._records.close()
            self._records = None

    # Control state ---------------------------------------------------------------------------------------

    def poll_once(self) -> None:
        try:
            response = self._session.get(f"{self.host}/v1/regions", timeout=5)
            response.raise_for_status()
            self.history.add(view_from_regions_body(response.json(), self.fleet, time.time()))
        except (requests.RequestException, ValueError) as error:
            self.poll_errors += 1
            if self.poll_errors <= 3:
                logger.warning("reading /v1/regions failed: %s", error)

    def _poll_forever(self) -> None:
        while True:
            self.poll_once()
            gevent.sleep(self.plan.poll_interval_s)

    def view_for(self, version: int | None) -> ControlView | None:
        """The state an answer names; a version newer than any seen is fetched now (it is the current one)."""
        if version is None:
            return None
        for _ in range(FETCH_TRIES):
            view = self.history.get(version)
            latest = self.history.latest_version
            if view is not None or (latest is not None and version < latest):
                return view  # older than the newest seen and never seen itself: missed, reported as unchecked
            self.poll_once()
        return self.history.get(version)

    # Requests ------------------------------------------------------------------------------------------

    def pick_origin(self) -> str:
        return random.choices(self._origins, self._origin_weights)[0]

    def pick_budget_ms(self, workload_class: str) -> float:
        budgets = self.plan.budgets_ms.get(workload_class)
        if budgets:
            return random.choice(budgets)
        default = self.fleet.workload_classes[workload_class].latency_budget_ms
        if default is None:
            raise ValueError(f"class {workload_class!r} has no latency budget: it is not served per request")
        return default

    def judge(self, observation: Observation) -> Check:
        now = time.time()
        # Attempts before the last one failed: evidence that the gateway may already route around that region.
        self.history.failed_attempts(observation.attempts[:-1], now)
        view = self.view_for(observation.state_version)
        check = self.checker.judge(observation, view, self.history.suspects(now))
        if check.outcome is Outcome.VIOLATION and check.rule is not None and view is not None:
            # The gateway's own health view runs up to one refresh ahead of the control state: before calling an
            # answer wrong, give the polls a moment to show a region it had just marked down.
            polls = self.history.polls
            while time.time() < now + RECHECK_MAX_S and (
                time.time() < now + RECHECK_WAIT_S or self.history.polls < polls + 2
            ):
                gevent.sleep(self.plan.poll_interval_s / 2)
            check = self.checker.judge(observation, view, self.history.suspects(now))
        return check

    def record(self, record: RequestRecord) -> None:
        self._write(record.to_json())

    def _write(self, data: dict[str, Any]) -> None:
        if self._records is not None:
            self._records.write(json.dumps(data, separators=(",", ":")) + "\n")


@listens_to(events.init)
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return  # run as a library (no command line): nothing to configure
    try:
        LoadRun.install(_configure(environment, options))
    except (ValueError, OSError) as error:  # pydantic's ValidationError is a ValueError
        # Locust logs and swallows exceptions from event handlers: a refused run must stop the process itself.
        logger.error("gridshift load test refused: %s", error)
        raise SystemExit(2) from None


def _configure(environment: Environment, options: Any) -> LoadRun:
    host = check_loopback(environment.host or options.host or "")
    plan_file = options.gridshift_plan
    plan = LoadPlan.model_validate_json(Path(plan_file).read_text()) if plan_file else LoadPlan()
    if not options.run_time:
        raise ValueError("a run time (-t) is required: load tests are bounded")
    check_caps(int(options.num_users or 1), float(options.run_time), float(options.spawn_rate or 1), plan.user_rps)
    fleet = load_fleet(plan.fleet_path)
    for name in plan.workload_mix:
        workload = fleet.workload_classes.get(name)
        if workload is None or workload.latency_budget_ms is None:
            raise ValueError(f"workload class {name!r} is not a per-request class of fleet {fleet.name!r}")
    run = LoadRun(environment, plan, fleet, host)
    if plan.trace is not None:
        # One user replays the whole trace, sending each request at its time from a greenlet of its own.
        RealtimeUser.weight = TolerantUser.weight = 0
        TraceReplayUser.weight = 1
        requests = load_trace_requests(Path(plan.trace.path))
        # From a third of the way in: the recording's first minutes are unusually sparse, so a short run from the
        # start would send a fraction of the rate it asks for.
        run.trace_schedule = schedule(requests, plan.trace.rate_per_s, float(options.run_time), len(requests) // 3)
    else:
        RealtimeUser.weight = plan.workload_mix.get("realtime", 0.0)
        TolerantUser.weight = plan.workload_mix.get("tolerant", 0.0)
        TraceReplayUser.weight = 0
    return run


@listens_to(events.test_start)
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    LoadRun.of(environment).start()


@listens_to(events.quitting)
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    run = LoadRun.find(environment)
    if run is not None:
        run.stop()


class GridshiftUser(HttpUser):
    """A caller in one workload class, from origins drawn per request, paced to the plan's rate."""

    abstract = True
    workload_class: ClassVar[str]
    _next_start_s: float = 0.0

    def wait_time(self) -> float:
        # Constant pacing: one request every 1 / user_rps seconds, however long the last one took.
        interval = 1.0 / LoadRun.of(self.environment).plan.user_rps
        now = time.monotonic()
        self._next_start_s = max(self._next_start_s + interval, now)
        return self._next_start_s - now

    @task
    def embed(self) -> None:
        run = LoadRun.of(self.environment)
        self.send(run, self.workload_class, run.pick_origin(), random.sample(TEXTS, random.randint(1, 2)))

    def send(self, run: LoadRun, workload_class: str, origin: str, texts: list[str]) -> None:
        """One request, judged and recorded."""
        budget_ms = run.pick_budget_ms(workload_class)
        headers = {
            "X-Gridshift-Class": workload_class,
            "X-Gridshift-Origin": origin,
            "X-Gridshift-Latency-Budget-Ms": f"{budget_ms:g}",
        }
        body = {"input": texts, "model": "all-MiniLM-L6-v2"}
        sent_s = time.time()
        with self.client.post(
            "/v1/embeddings",
            json=body,
            headers=headers,
            name=f"/v1/embeddings [{workload_class}]",
            catch_response=True,
            timeout=REQUEST_TIMEOUT_S,
        ) as response:
            done_s = time.time()
            status = int(response.status_code or 0)
            error = ""
            if not 200 <= status < 300:
                error = str(response.error or response.text[:200])
            observation = Observation(
                origin=origin,
                workload_class=workload_class,
                latency_budget_ms=budget_ms,
                status=status,
                region=response.headers.get("X-Gridshift-Region"),
                reason=response.headers.get("X-Gridshift-Reason"),
                state_version=parse_version(response.headers.get("X-Gridshift-State-Version")),
                attempts=parse_attempts(response.headers.get("X-Gridshift-Attempts")),
                error=error,
                full=parse_attempts(response.headers.get("X-Gridshift-Full")),
                rejected=status == 503 and "Retry-After" in response.headers and '"overloaded"' in response.text,
            )
            check = run.judge(observation)
            if check.outcome is Outcome.VIOLATION:
                response.failure(check.failure_text())
            else:
                response.success()
        run.record(
            RequestRecord(
                sent_s=sent_s,
                done_s=done_s,
                workload_class=workload_class,
                origin=origin,
                budget_ms=budget_ms,
                status=status,
                region=observation.region,
                reason=observation.reason,
                state_version=observation.state_version,
                outcome=check.outcome,
                rule=check.rule,
                message=check.message,
                intended=check.intended,
                under_event=check.under_event,
            )
        )


class RealtimeUser(GridshiftUser):
    """Real-time work (tens of ms): must run at its origin or the nearest healthy region."""

    workload_class = "realtime"


class TolerantUser(GridshiftUser):
    """Latency-tolerant work: must run where the routing core could send it, given the grid."""

    workload_class = "tolerant"


class TraceReplayUser(GridshiftUser):
    """The open-loop replay: every request of the schedule sent at its time, from a greenlet of its own, whatever
    the answers do (a closed loop of users limits itself, and would hide overload)."""

    # unused: each request draws its own class. The weight stays locust's default here (locust drops a class whose
    # weight is 0 when it loads the file); `_configure` sets it to 0 for runs that are not trace replays.
    workload_class = "tolerant"

    def on_start(self) -> None:
        # One connection per request in flight: requests' default pool of 10 would serialise the burst.
        self.client.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=512))

    @task
    def replay(self) -> None:
        run = LoadRun.of(self.environment)
        trace = run.plan.trace
        if trace is None:  # pragma: no cover - the user is weighted only for trace plans
            raise RuntimeError("TraceReplayUser needs a trace plan")
        started = time.monotonic()
        for request in run.trace_schedule:
            delay = request.at_s - (time.monotonic() - started)
            if delay > 0:
                gevent.sleep(delay)
            klass = "realtime" if random.random() < trace.realtime_share else "tolerant"
            texts = [random.choice(TEXTS) for _ in range(request.sentences)]
            gevent.spawn(self.send, run, klass, run.pick_origin(), texts)
        while True:  # the schedule is done: idle until locust's -t stops the run (a second replay would double it)
            gevent.sleep(60.0)


class ScenarioShape(LoadTestShape):
    """The plan's stages over locust's own -u users and -t run time; stops the run at -t."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            return None
        environment = self.runner.environment
        options = environment.parsed_options
        run_time = float(options.run_time or 0) if options else 0.0
        elapsed = self.get_run_time()  # type: ignore[no-untyped-call]
        if not run_time or elapsed >= run_time:
            return None
        users = int(options.num_users or 1) if options else 1
        spawn_rate = float(options.spawn_rate or 1) if options else 1.0
        return users_at(LoadRun.of(environment).plan.shape(), users, elapsed / run_time), spawn_rate
