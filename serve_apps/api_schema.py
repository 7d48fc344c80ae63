"""The HTTP API's request models, its one error shape, and bounded body reading (size and depth before parsing)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from fleet.base import UtcDatetime

MAX_JSON_DEPTH = 32
"""Deepest nesting any request body may have: the deepest real body (a batch job) is 3 levels; a body nested
thousands deep is refused before the parser recurses into it."""

TOKEN_IDS_HELP = (
    "input: token-id arrays are not supported: the fleet's model has its own tokenizer, so send the texts as strings. "
    "LangChain's OpenAIEmbeddings sends token ids by default: construct it with check_embedding_ctx_length=False."
)


class FastJSONResponse(JSONResponse):
    """A JSON response rendered by orjson: an embeddings answer is thousands of floats, and the standard library's
    encoder spent more of the gateway's CPU on them (about 1.5 ms for four sentences) than routing and admission
    together. Clients read back the same floats: both write each float's shortest round-trip form (orjson writes a
    small exponent as 1e-8 where the standard library writes 1e-08)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """A client-facing error with its status, OpenAI-style type and optional offending parameter."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error, ...")
    param: str | None = Field(None, description="The offending parameter or header, when one is to blame.")
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error answer of the API: OpenAI's shape, so OpenAI clients surface the message as they would OpenAI's."""

    error: ErrorDetail


def error_body(message: str, kind: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None, **extra}}


def is_token_ids(value: object) -> bool:
    """Whether an embeddings `input` is token ids: OpenAI accepts one array of ints, or several, for strings."""
    if not isinstance(value, list) or not value:
        return False
    items = [item for row in value for item in row] if all(isinstance(row, list) for row in value) else value
    return all(isinstance(item, int) and not isinstance(item, bool) for item in items)


class EmbeddingsRequest(BaseModel):
    """OpenAI `POST /v1/embeddings` body (strings only: token-id arrays are not supported)."""

    model_config = ConfigDict(extra="allow")

    input: str | list[str] = Field(description="Text or list of texts to embed.")
    model: str = Field(min_length=1, description="Model name (any value is accepted; the fleet serves one model).")
    encoding_format: Literal["float", "base64"] = Field("float", description="float list or base64 of float32.")
    user: str | None = Field(None, description="End-user id (ignored).")


class EventRequest(BaseModel):
    """`POST /v1/admin/events` body. Times default to the control clock's now, and open-ended."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(min_length=1)
    level: int | None = Field(None, ge=0, le=3, description="0 normal, 1 elevated, 2 high, 3 emergency.")
    power_limit_kw: PositiveFloat | None = Field(None, description="Import limit while active, kW.")
    start: UtcDatetime | None = Field(None, description="Start (UTC); default: now on the control clock.")
    end: UtcDatetime | None = Field(None, description="End (UTC, exclusive); default: until cleared.")
    source: Literal["operator", "utility"] = "operator"


Model = TypeVar("Model", bound=BaseModel)


def require_region(region_names: Sequence[str], region: str) -> None:
    """422 naming `region` when the fleet has no such region (an event or a job for it could never apply)."""
    if region not in region_names:
        raise ApiError(422, f"region: {region!r} is not in the fleet {list(region_names)}", param="region")


def validated(model: type[Model], body: Any) -> Model:
    """The body as `model`, or a 422 with field errors (the same shape FastAPI gives its own validation)."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None


# A JSON string (escapes included) or one bracket: brackets inside strings are skipped with their string.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_exceeds(data: bytes, limit: int) -> bool:
    """Whether JSON text nests deeper than `limit`, found without parsing it (the parser recurses per level)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # the common case, in two C-speed scans
    depth = 0
    for match in _STRUCTURE.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


async def read_json(raw: Request, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The body as JSON, refusing oversized bodies (413) and over-deep ones (422) before parsing, bad JSON (422)."""
    declared = raw.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"body of {declared} bytes exceeds the limit of {max_bytes}")
    data = bytearray()
    async for chunk in raw.stream():
        data += chunk
        if len(data) > max_bytes:
            raise ApiError(413, f"body exceeds the limit of {max_bytes} bytes")
    if json_depth_exceeds(bytes(data), max_depth):
        raise ApiError(422, f"body nests deeper than {max_depth} levels")
    try:
        return json.loads(bytes(data))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(422, f"body is not valid JSON: {error}") from None
    except RecursionError:  # pragma: no cover - the depth check above comes first
        raise ApiError(422, "body nests too deeply") from None
