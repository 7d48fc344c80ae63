"""The provider surface in-process (ASGI) over a real ControlPlane on the packaged trace, fake regions: tenants and
keys, tiers during a DR event, prices, quotes, usage that reconciles with what was served, and rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fleet.clock import FixedClock
from fleet.loaders import load_rtt_matrix
from fleet.tenants import AuthMode
from grid.context import FleetContext
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from serve_apps.admin_token import admin_token_digest
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from serve_apps.provider import Provider
from serve_apps.tenant_auth import KEY_REQUIRED
from tenants.store import TenantStore
from tests.fakes import FakeRegion
from tests.unit.gateway_app import ADMIN, PEAK_S, REGIONS, TOKEN, _context

BODY = {"model": "m", "input": ["a b", "c"]}
WEST = {"X-Gridshift-Origin": "us-west-1"}  # CISO, at stress 3 at PEAK_S


def _app(auth: AuthMode) -> tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]]:
    context = _context()
    fleet = context.fleet.model_copy(
        update={
            "gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False}),
            "tenants": context.fleet.tenants.model_copy(update={"auth": auth}),
        }
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in REGIONS}
    core = GatewayCore(fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), regions)
    provider = Provider(fleet, context, TenantStore.open("sqlite://"))
    return TestClient(create_app(core, admin_token_digest(TOKEN), provider)), core, provider, regions


@pytest.fixture
def required() -> Iterator[tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]]]:
    client, core, provider, regions = _app(AuthMode.REQUIRED)
    with client:
        yield client, core, provider, regions


def _tenant(client: TestClient, name: str, **spec: object) -> dict[str, str]:
    answer = client.post("/v1/admin/tenants", json={"name": name, **spec}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['api_key']}"}


def test_every_bad_key_gets_the_same_401(
    required: tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]],
) -> None:
    client = required[0]
    key = _tenant(client, "acme")
    revoked = _tenant(client, "gone")
    assert client.post("/v1/admin/tenants/gone/revoke", headers=ADMIN).status_code == 200
    bodies = []
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer gsk_0123456789abcdef_" + "x" * 43},
        {"Authorization": key["Authorization"][:-2] + "zz"},
        revoked,
    ):
        answer = client.post("/v1/embeddings", json=BODY, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        bodies.append(answer.json())
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["error"]["message"] == KEY_REQUIRED
    assert client.post("/v1/quotes", json={}, headers={}).status_code == 401
    assert client.post("/v1/embeddings", json=BODY, headers=key).status_code == 200


def test_a_tier_above_the_key_is_403_naming_it(
    required: tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]],
) -> None:
    client = required[0]
    key = _tenant(client, "acme", default_tier=0, max_tier=1)
    answer = client.post("/v1/embeddings", json=BODY, headers={**key, "X-Gridshift-Flex-Tier": "2"})
    assert answer.status_code == 403
    assert answer.json()["error"]["param"] == "X-Gridshift-Flex-Tier"
    assert "tier 2" in answer.json()["error"]["message"]
    assert client.post("/v1/embeddings", json=BODY, headers={**key, "X-Gridshift-Flex-Tier": "9"}).status_code == 422


def test_during_a_dr_event_tier_0_stays_and_tier_2_moves_and_usage_reconciles(
    required: tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]],
) -> None:
    client, core, provider, regions = required
    firm = _tenant(client, "hospital", default_tier=0, max_tier=0)
    flexible = _tenant(client, "render-farm", default_tier=2, max_tier=3)
    event = client.post("/v1/admin/events", json={"region": "us-west-1", "level": 3}, headers=ADMIN)
    assert event.status_code == 201
    sent = {"hospital": 0, "render-farm": 0}
    for index in range(20):
        for name, key in (("hospital", firm), ("render-farm", flexible)):
            headers = {**key, **WEST, "X-Request-Id": f"{name}-{index}"}
            answer = client.post("/v1/embeddings", json=BODY, headers=headers)
            assert answer.status_code == 200, answer.text
            sent[name] += 1
            region = answer.headers["X-Gridshift-Region"]
            if name == "hospital":
                assert (answer.headers["X-Gridshift-Flex-Tier"], region) == ("0", "us-west-1")
                assert answer.headers["X-Gridshift-Flex-Effects"] == "none"
            else:
                assert answer.headers["X-Gridshift-Flex-Tier"] == "2"
                assert region != "us-west-1"
                assert "moved" in answer.headers["X-Gridshift-Flex-Effects"]
    # Tier 0 is served as the class the ladder never degrades; tier 2 as its own, degradable class.
    assert set(regions["us-west-1"].classes) == {"firm"}
    assert {c for name in REGIONS if name != "us-west-1" for c in regions[name].classes} == {"tolerant"}
    # A replay of a request id (a client retry through another replica) is served again but recorded once.
    replay = client.post("/v1/embeddings", json=BODY, headers={**firm, **WEST, "X-Request-Id": "hospital-0"})
    assert replay.status_code == 200
    assert asyncio.run(provider.recorder.flush())
    usage = client.get("/v1/usage", headers=ADMIN).json()
    names = {t["tenant_id"]: t["name"] for t in client.get("/v1/admin/tenants", headers=ADMIN).json()["tenants"]}
    totals = {names[tenant]: entry for tenant, entry in usage["totals"].items()}
    assert {name: entry["requests"] for name, entry in totals.items()} == sent
    assert sum(core.served_by_region.values()) == sum(sent.values()) + 1  # the replay was served, not re-recorded
    assert {name: entry["items"] for name, entry in totals.items()} == {n: 2 * c for n, c in sent.items()}
    assert totals["hospital"]["moved"] == 0
    assert totals["render-farm"]["moved"] == sent["render-farm"]
    assert totals["render-farm"]["earned_usd"] > 0
    assert totals["hospital"]["earned_usd"] == pytest.approx(0.0)
    own = client.get("/v1/usage", headers=firm).json()  # a tenant sees only its own usage
    assert [names[t] for t in own["totals"]] == ["hospital"]


def test_rate_limits_answer_429_with_retry_after(
    required: tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]],
) -> None:
    client = required[0]
    key = _tenant(client, "bursty", requests_per_s=1.0)
    answers = [client.post("/v1/embeddings", json=BODY, headers=key) for _ in range(3)]
    assert answers[0].status_code == 200
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json()["error"]["type"] == "rate_limit_error"


def test_prices_and_quotes(required: tuple[TestClient, GatewayCore, Provider, dict[str, FakeRegion]]) -> None:
    client = required[0]
    prices = client.get("/v1/prices", params={"region": "us-west-1", "hours": 3}).json()
    assert prices["issued_at"] == "2022-09-07T01:00:00Z"
    hours = prices["regions"][0]["hours"]
    assert len(hours) == 3
    assert [t["tier"] for t in hours[0]["tiers"]] == [0, 1, 2, 3]
    per_1k = [t["usd_per_1k_items"] for t in hours[0]["tiers"]]
    assert per_1k == sorted(per_1k, reverse=True)
    assert client.get("/v1/prices", params={"region": "mars"}).status_code == 422
    key = _tenant(client, "acme", default_tier=3, max_tier=3)
    ask = {"region": "us-west-1", "work_hours": 4, "deadlines": ["2022-09-07T06:00:00Z", "2022-09-08T01:00:00Z"]}
    quote = client.post("/v1/quotes", json=ask, headers=key)
    assert quote.status_code == 200, quote.text
    first, later = quote.json()["quotes"]
    assert later["expected_usd"] < first["expected_usd"]  # a later deadline saves
    impossible = client.post("/v1/quotes", json={**ask, "deadlines": ["2022-09-07T03:00:00Z"]}, headers=key)
    assert impossible.status_code == 422
    assert impossible.json()["error"]["param"] == "deadlines.0"
    capped = _tenant(client, "capped", default_tier=0, max_tier=1)
    assert client.post("/v1/quotes", json={**ask, "tier": 3}, headers=capped).status_code == 403


def test_the_open_default_needs_no_key_and_routes_as_before() -> None:
    client, _, _, _ = _app(AuthMode.OPEN)
    with client:
        answer = client.post("/v1/embeddings", json=BODY)
        assert answer.status_code == 200
        assert "X-Gridshift-Flex-Tier" not in answer.headers
        # OpenAI clients always send a key (the README's api_key="unused"): on an open fleet that is no key at all,
        # while a mistyped gridshift key is refused rather than silently served anonymously.
        assert client.post("/v1/embeddings", json=BODY, headers={"Authorization": "Bearer unused"}).status_code == 200
        typo = {"Authorization": f"Bearer gsk_{'0' * 16}_typo"}
        assert client.post("/v1/embeddings", json=BODY, headers=typo).status_code == 401
        tiered = client.post("/v1/embeddings", json=BODY, headers={**WEST, "X-Gridshift-Flex-Tier": "0"})
        assert tiered.headers["X-Gridshift-Flex-Tier"] == "0"
        assert tiered.headers["X-Gridshift-Region"] == "us-west-1"


def test_admin_tenant_calls_need_the_admin_token_and_rotate_shows_a_new_key_once() -> None:
    client, _, _, _ = _app(AuthMode.REQUIRED)
    with client:
        assert client.post("/v1/admin/tenants", json={"name": "x"}).status_code == 401
        key = _tenant(client, "acme")
        assert client.post("/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN).status_code == 409
        rotated = client.post("/v1/admin/tenants/acme/rotate", headers=ADMIN).json()["api_key"]
        listing = client.get("/v1/admin/tenants", headers=ADMIN).json()["tenants"]
        assert rotated not in str(listing)
        assert key["Authorization"][7:] not in str(listing)
        assert client.post("/v1/admin/tenants/nobody/revoke", headers=ADMIN).status_code == 404
