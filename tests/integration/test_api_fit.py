"""The running gateway as OpenAI-compatible tools and a fuzzer see it: LangChain's embeddings class, the openai
client's model listing, and Schemathesis over the live OpenAPI document (no 5xx, every answer as documented)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from langchain_openai import OpenAIEmbeddings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from serve_apps.api_schema import TOKEN_IDS_HELP
from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_langchain_embeds_once_told_to_send_strings(deployed: Deployed) -> None:
    embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]  # pydantic aliases the stubs do not list
        model="all-MiniLM-L6-v2",
        base_url=f"{deployed.url}/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # send strings: the fleet's model has its own tokenizer
        max_retries=0,
    )
    vectors = embeddings.embed_documents(["the grid is stressed tonight", "shift me west"])
    assert [len(vector) for vector in vectors] == [384, 384]
    assert len(embeddings.embed_query("one more")) == 384


def test_token_ids_as_langchain_sends_them_by_default_get_the_fix_in_the_message(deployed: Deployed) -> None:
    # LangChain's default (check_embedding_ctx_length=True) tokenizes with tiktoken, which downloads its vocabulary
    # on first use (impossible offline), then posts arrays of token ids: this is that request, as it sends it.
    answer = httpx.post(
        f"{deployed.url}/v1/embeddings",
        json={"input": [[1820, 5950, 374, 32647], [13724, 757, 9909]], "model": "text-embedding-ada-002"},
        timeout=30,
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == TOKEN_IDS_HELP


def test_fuzzing_the_running_gateway_gets_no_5xx(deployed: Deployed) -> None:
    # No admin token: the fleet is shared with the other tests, so fuzzing must not post events or start jobs; the
    # admin operations are fuzzed to their 401 here and in full in-process (tests/unit/test_http_fuzz.py).
    # (Schemathesis's lazy pytest fixture does not work with this pytest; the operations are driven by hand.)
    schema = schemathesis.openapi.from_url(f"{deployed.url}/openapi.json")
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=checks, timeout=60)

        fuzz()
