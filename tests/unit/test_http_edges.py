"""The API's hard edges in-process: readiness, malformed bodies, token-id input, /v1/models, the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serve_apps.api_schema import FastJSONResponse, json_depth_exceeds
from serve_apps.backends import RegionalResult
from serve_apps.http_api import embeddings_body
from tests.fakes import FakeRegion
from tests.unit.gateway_app import ADMIN, REGIONS, gateway_app

CORPUS = Path(__file__).parents[1] / "data" / "http_corpus"


@pytest.fixture
def regions() -> dict[str, FakeRegion]:
    return {name: FakeRegion(name) for name in REGIONS}


@pytest.fixture
def client(regions: dict[str, FakeRegion]) -> Iterator[TestClient]:
    app, _ = gateway_app(regions, warm_precisions=("fp32", "bf16"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _is_error(response: Any, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["type"], str)
    return dict(body["error"])


def test_not_ready_until_every_region_is_warm_at_every_precision(
    client: TestClient, regions: dict[str, FakeRegion]
) -> None:
    for region in regions.values():
        region.warmed = ("fp32",)
    regions["us-west-2"].failing = True
    starting = client.get("/readyz")
    error = _is_error(starting, 503)
    assert starting.headers["Retry-After"] == "1"
    assert "us-west-2" in str(error["message"])
    body = starting.json()
    assert body["status"] == "starting"
    assert body["regions"]["us-west-1"] == {"ready": False, "warmed": ["fp32"], "detail": "not warmed up at ['bf16']"}
    assert "down" in body["regions"]["us-west-2"]["detail"]
    assert client.get("/healthz").status_code == 200  # alive all along

    regions["us-west-2"].failing = False
    for region in regions.values():
        region.warmed = ("fp32", "bf16")
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["precisions"] == ["fp32", "bf16"]
    # Ready for good: a region failing later is failover's business, not the load balancer's.
    regions["us-west-2"].failing = True
    assert client.get("/readyz").status_code == 200


def test_a_body_nested_50000_deep_is_a_422_in_json() -> None:
    app, _ = gateway_app()
    with TestClient(app, raise_server_exceptions=True) as client:  # any server error raises here
        response = client.post(
            "/v1/embeddings", content=b'{"input": ' + b"[" * 50_000 + b"]" * 50_000 + b', "model": "m"}'
        )
    error = _is_error(response, 422)
    assert "deeper than 32" in str(error["message"])


def test_depth_scan_skips_brackets_inside_strings() -> None:
    assert not json_depth_exceeds(json.dumps({"input": ["[" * 100, "{{{" * 50]}).encode(), 4)
    assert json_depth_exceeds(b'{"a": [[[["x"]]]]}', 4)
    assert not json_depth_exceeds(b'{"a": [[["\\"]]]]"]]]}', 4)  # an escaped quote does not end the string


@pytest.mark.parametrize(
    "tokens",
    [[101, 2023, 102], [[101, 2023, 102], [101, 102]]],
    ids=["one-array", "arrays"],
)
def test_token_id_input_says_what_to_do(client: TestClient, tokens: list[object]) -> None:
    error = _is_error(client.post("/v1/embeddings", json={"input": tokens, "model": "m"}), 422)
    assert error["param"] == "input"
    assert "check_embedding_ctx_length=False" in str(error["message"])


def test_models_in_openai_shape(client: TestClient) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    [card] = listed["data"]
    assert card["id"] == "all-MiniLM-L6-v2"
    assert card["object"] == "model"
    assert isinstance(card["created"], int)
    assert client.get("/v1/models/all-MiniLM-L6-v2").json() == card
    assert _is_error(client.get("/v1/models/text-embedding-3-small"), 404)["param"] == "model"


def test_openapi_declares_bodies_errors_and_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, model in (
        ("/v1/embeddings", "EmbeddingsRequest"),
        ("/v1/admin/events", "EventRequest"),
        ("/v1/batch/jobs", "BatchJobSpec"),
    ):
        body = schema["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert model in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "description": "The admin token `gridshift up` printed, or $GRIDSHIFT_ADMIN_TOKEN.",
        "scheme": "bearer",
    }
    assert schema["paths"]["/v1/admin/events"]["post"]["security"] == [{"HTTPBearer": []}]
    # A tenant key, optional while the fleet's auth is open (docs/tenants.md), never the admin token.
    assert schema["paths"]["/v1/embeddings"]["post"]["security"] == [{"TenantKey": []}]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == error
    # The documented body is what the route accepts: /docs can send it.
    example = {"input": ["hello"], "model": "all-MiniLM-L6-v2"}
    assert client.post("/v1/embeddings", json=example).status_code == 200
    assert client.post("/v1/admin/events", json={"region": "us-west-2", "level": 2}, headers=ADMIN).status_code == 201


def test_admin_needs_the_bearer_scheme(client: TestClient) -> None:
    token = ADMIN["Authorization"].split()[1]
    for headers in ({}, {"Authorization": f"Basic {token}"}, {"Authorization": "Bearer "}):
        response = client.get("/v1/admin/events", headers=headers)
        assert _is_error(response, 401)["type"] == "authentication_error"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


@pytest.mark.parametrize("case", _corpus(), ids=lambda path: path.stem)
def test_corpus_of_malformed_requests_gets_json_4xx(client: TestClient, case: Path) -> None:
    """Requests that once broke the API or a gateway like it, kept so they never do again (tests/data/http_corpus)."""
    spec = json.loads(case.read_text())
    body = spec["body"].encode("utf-8", "surrogateescape") if "body" in spec else bytes.fromhex(spec["body_hex"])
    headers = {**spec.get("headers", {}), **(ADMIN if spec.get("admin") else {})}
    response = client.request(spec["method"], spec["path"], content=body, headers=headers)
    assert 400 <= response.status_code < 500, (case.name, response.status_code, response.text)
    assert response.json()["error"]["message"]


def test_the_fast_embeddings_json_is_the_standard_librarys_text() -> None:
    # orjson renders the answer for speed; clients must read back exactly the floats the standard library wrote.
    vectors = np.random.default_rng(7).standard_normal((3, 384)).astype(np.float32)
    vectors[0, :3] = [1e-8, -0.0, 3.0e12]
    body = embeddings_body(RegionalResult("us-west-2", vectors, "fp32", 12, "all-MiniLM-L6-v2 \u00e9"))
    fast = json.loads(bytes(FastJSONResponse(body).body))
    assert fast == json.loads(json.dumps(body, ensure_ascii=False, allow_nan=False))
    assert np.array_equal(np.array([item["embedding"] for item in fast["data"]], dtype=np.float32), vectors)
