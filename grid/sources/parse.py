"""Payload reading shared by the adapters: JSON bodies, UTC times and numbers, each refused with a reason.

A refusal never quotes the body (it may echo a credential back, as EIA's `request.params` does).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any


class PayloadError(ValueError):
    """A body or a field that cannot be what the provider documents (the source turns it into `bad_payload`)."""


def load_json(body: bytes, content_type: str = "") -> Any:
    """The body as JSON; a PayloadError names the content type and size, never the text."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = content_type.split(";")[0].strip() or "no content type"
        raise PayloadError(f"body is not JSON ({kind}, {len(body)} bytes)") from None


def parse_utc_time(text: object, naive_is_utc: bool = False) -> int:
    """Epoch seconds of an ISO-8601 time ('2022-09-07T01:00:00Z', '...+00:00', EIA's '2022-09-07T01').

    A time without offset is refused unless `naive_is_utc`: guessing a zone shifts every value by hours.
    """
    if not isinstance(text, str) or not text.strip():
        raise PayloadError(f"time: expected ISO-8601 text, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PayloadError(f"time: not ISO-8601: {text[:40]!r}") from None
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise PayloadError(f"time: {text[:40]!r} has no UTC offset")
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_epoch(value: object, scale_to_s: float) -> int:
    """Epoch seconds from a number of seconds (scale 1) or milliseconds (scale 1e-3)."""
    number = parse_number(value)
    if not math.isfinite(number):
        raise PayloadError("time: not a finite number")
    return int(number * scale_to_s)


def parse_number(value: object) -> float:
    """A JSON number or numeric text (EIA sends values as strings) as float; NaN and inf pass through (the store
    rejects them with their own reason), anything else is a PayloadError."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"value: expected a number, got {'null' if value is None else 'a boolean'}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            raise PayloadError(f"value: not a number: {value[:20]!r}") from None
    raise PayloadError(f"value: expected a number, got {type(value).__name__}")


def dig(body: Any, path: str) -> Any:
    """The value at a dotted path of mappings ('response.data'); '' is the body itself."""
    node = body
    for part in [p for p in path.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            raise PayloadError(f"no {path!r} in the body (stopped at {part!r})")
        node = node[part]
    return node


def require_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def require_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{what}: expected a list, got {type(value).__name__}")
    return value
