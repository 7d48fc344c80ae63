"""Locust users for the two-tenant load test: each user calls as one tenant, at its tier, and records what it saw.

Run by `python -m loadtests.run --scenario tenants` (which creates the tenants, hands their keys over in
$GRIDSHIFT_LOADTEST_TENANT_KEYS, posts and clears the DR event and reconciles usage afterwards). Like the routing
locustfile it never imports Ray: Ray imported before locust's gevent patching breaks gevent.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import IO, Any, ClassVar

from locust import HttpUser, events, task
from locust.env import Environment

from loadtests.locust_hooks import listens_to
from loadtests.scenarios import check_caps, check_loopback
from loadtests.tenant_plan import KEYS_ENV, TenantCall, TenantLoad, TenantsPlan, parse_effects

logger = logging.getLogger("gridshift.loadtest.tenants")

TEXTS = (
    "the grid is stressed tonight",
    "batch jobs can wait for a greener hour",
    "demand response asks large loads to step down",
    "tier zero work is never moved",
)
REQUEST_TIMEOUT_S = 30.0


class TenantRun:
    """The plan, the keys, which tenant the next user calls as, and the records file."""

    current: ClassVar[TenantRun | None] = None

    def __init__(self, plan: TenantsPlan, keys: dict[str, str]) -> None:
        missing = sorted({t.name for t in plan.tenants} - set(keys))
        if missing:
            raise ValueError(f"no key for tenants {missing} in {KEYS_ENV}")
        self.plan = plan
        self.keys = keys
        self._next_tenant = itertools.cycle(plan.user_tenants())
        self._records: IO[str] | None = None

    def next_tenant(self) -> TenantLoad:
        return next(self._next_tenant)

    def start(self) -> None:
        path = Path(self.plan.records_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._records = path.open("a", encoding="utf-8")
        self.write({"kind": "start", "t": time.time(), "scenario": self.plan.scenario})

    def write(self, data: dict[str, Any]) -> None:
        if self._records is not None:
            self._records.write(json.dumps(data, separators=(",", ":")) + "\n")
            self._records.flush()

    def stop(self) -> None:
        if self._records is not None:
            self.write({"kind": "stop", "t": time.time()})
            self._records.close()
            self._records = None


@listens_to(events.init)
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    try:
        check_loopback(environment.host or options.host or "")
        if not options.run_time:
            raise ValueError("a run time (-t) is required: load tests are bounded")
        plan = TenantsPlan.model_validate_json(Path(options.gridshift_plan).read_text())
        check_caps(int(options.num_users or 1), float(options.run_time), float(options.spawn_rate or 1), plan.user_rps)
        TenantRun.current = TenantRun(plan, json.loads(os.environ.get(KEYS_ENV) or "{}"))
    except (ValueError, OSError) as error:
        logger.error("gridshift tenants load test refused: %s", error)
        raise SystemExit(2) from None


@listens_to(events.test_start)
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    del environment
    if TenantRun.current is not None:
        TenantRun.current.start()


@listens_to(events.quitting)
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    del environment
    if TenantRun.current is not None:
        TenantRun.current.stop()


class TenantUser(HttpUser):
    """A tenant's caller: its key, its tier, the plan's origin; paced to the plan's rate whatever the answers."""

    _next_start_s: float = 0.0

    def on_start(self) -> None:
        run = self._run()
        self.tenant = run.next_tenant()
        self.key = run.keys[self.tenant.name]

    @staticmethod
    def _run() -> TenantRun:
        if TenantRun.current is None:
            raise RuntimeError("no tenants plan: run this locustfile through python -m loadtests.run")
        return TenantRun.current

    def wait_time(self) -> float:
        interval = 1.0 / self._run().plan.user_rps
        now = time.monotonic()
        self._next_start_s = max(self._next_start_s + interval, now)
        return self._next_start_s - now

    @task
    def embed(self) -> None:
        run = self._run()
        texts = random.sample(TEXTS, random.randint(1, 3))
        request_id = os.urandom(16).hex()
        headers = {
            "Authorization": f"Bearer {self.key}",
            "X-Gridshift-Flex-Tier": str(self.tenant.tier),
            "X-Gridshift-Class": self.tenant.workload_class,
            "X-Gridshift-Origin": run.plan.origin,
            "X-Request-Id": request_id,
        }
        sent_s = time.time()
        with self.client.post(
            "/v1/embeddings",
            json={"input": texts, "model": "all-MiniLM-L6-v2"},
            headers=headers,
            name=f"/v1/embeddings [tier {self.tenant.tier}{', limited' if self.tenant.rate_limited else ''}]",
            catch_response=True,
            timeout=REQUEST_TIMEOUT_S,
        ) as response:
            status = int(response.status_code or 0)
            # A 429 for the limited tenant is the behaviour under test, not a failure of the run.
            if status == 200 or (status == 429 and self.tenant.rate_limited):
                response.success()
            else:
                response.failure(f"HTTP {status}: {response.text[:200]}")
            call = TenantCall(
                tenant=self.tenant.name,
                tier=self.tenant.tier,
                request_id=request_id,
                items=len(texts),
                origin=run.plan.origin,
                sent_s=sent_s,
                done_s=time.time(),
                status=status,
                region=response.headers.get("X-Gridshift-Region"),
                precision=response.headers.get("X-Gridshift-Precision"),
                effects=parse_effects(response.headers.get("X-Gridshift-Flex-Effects")),
                retry_after=response.headers.get("Retry-After"),
            )
        run.write(call.to_json())
