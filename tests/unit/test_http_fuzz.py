"""Fuzzing the gateway's API from its own OpenAPI document (Schemathesis): no input, valid or not, gets a 5xx, and
every answer matches what the document declares (errors: the one ErrorBody shape). In-process, fake regions; the
integration suite fuzzes the running gateway the same way. Cases it finds go into tests/data/http_corpus."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.unit.gateway_app import ADMIN, gateway_app

APP, _ = gateway_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_5xx_and_every_answer_matches_the_document(case: Any) -> None:
    # With the admin token: the admin operations' bodies are fuzzed too, not only their 401.
    case.call_and_validate(headers=ADMIN, checks=CHECKS)
