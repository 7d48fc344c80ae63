"""OpenADR 3 schemas, loaded from the spec's OpenAPI files at run time, and validation that names what is wrong.

The OpenAPI 3.0 dialect is turned into JSON Schema draft 4 (its base): `nullable: true` becomes a union with
null, the annotation-only `discriminator` is dropped, and OpenADR formats (`date-time`, `uri`, `int32`, `float`)
are checked. The few contradictions in the published 3.1.0 file are patched in memory (`ERRATA`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from fleet.errors import ConfigError, OpenADRValidationError
from fleet.openadr import SPEC_VERSIONS, SpecVersion

SPEC_FILES: Mapping[SpecVersion, str] = {"3.0.1": "openadr3_3.0.1.yaml", "3.1.0": "openadr3_3.1.0.yaml"}
EVENT_PAYLOADS_FILE = "event-interval-payloads_3.1.0.schema.yaml"
_ROOT_URI = "urn:gridshift:openadr3:{version}"
_MAX_PROBLEMS = 8

NOW_SENTINELS = frozenset({"0001-01-01", "0001-01-01T00:00:00"})
"""3.1.0: an intervalPeriod start of these values means 'now' (Definition, intervalPeriod)."""

# What a client sends when it creates or updates each kind of object (3.1.0 split objects into a server
# representation and a request body; 3.0.1 used one schema for both).
REQUEST_SCHEMAS: Mapping[SpecVersion, Mapping[str, str]] = {
    "3.0.1": {
        "program": "program",
        "event": "event",
        "report": "report",
        "subscription": "subscription",
        "ven": "ven",
        "resource": "resource",
    },
    "3.1.0": {
        "program": "programRequest",
        "event": "eventRequest",
        "report": "reportRequest",
        "subscription": "subscriptionRequest",
        "ven": "venRequest",
        "resource": "resourceRequest",
    },
}

OBJECT_SCHEMAS: Mapping[str, str] = {
    "PROGRAM": "program",
    "EVENT": "event",
    "REPORT": "report",
    "SUBSCRIPTION": "subscription",
    "VEN": "ven",
    "RESOURCE": "resource",
}
"""objectType (notifications, objectMetadata) -> the schema of the server's representation."""

ERRATA: Mapping[SpecVersion, tuple[str, ...]] = {
    "3.0.1": (
        "notification.object: oneOf with a discriminator on objectType is validated as the schema that objectType "
        "names (draft 4 has no discriminator; plain oneOf gives unreadable errors and can match twice)",
    ),
    "3.1.0": (
        "ven, resource: allOf objectMetadata (objectType one of PROGRAM..RESOURCE) and BlVenRequest/"
        "BlResourceRequest (objectType BL_VEN_REQUEST/BL_RESOURCE_REQUEST) cannot both hold; the request "
        "part's objectType is dropped so the server's VEN/RESOURCE objectType is checked",
        "notification.object: oneOf with a discriminator on objectType is validated as the schema that objectType "
        "names (draft 4 has no discriminator; plain oneOf gives unreadable errors and can match twice)",
    ),
}


def packaged_spec_dir() -> Path:
    """The spec files shipped in `openadr/spec`."""
    return Path(str(resources.files("openadr").joinpath("spec")))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the OpenADR spec: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an OpenAPI/JSON-schema mapping")
    return data


def openapi_to_draft4(node: Any) -> Any:
    """One OpenAPI 3.0 schema as JSON Schema draft 4: nullable becomes a union with null, and annotation-only
    keywords that draft 4 does not know are dropped. Returns a new structure."""
    if isinstance(node, list):
        return [openapi_to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: openapi_to_draft4(value)
        for key, value in node.items()
        if key not in ("nullable", "discriminator", "example", "$id", "$comment")
    }
    if node.get("nullable") is True:
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:  # a $ref or a composition: null is one more alternative
            return {"anyOf": [{"type": "null"}, out]}
    return out


def _apply_errata(version: SpecVersion, schemas: dict[str, Any]) -> None:
    # Validated separately, by the schema its objectType names (see ERRATA).
    schemas["notification"]["properties"]["object"] = {"type": "object"}
    if version == "3.1.0":
        for server, request in (("ven", "BlVenRequest"), ("resource", "BlResourceRequest")):
            body = copy.deepcopy(schemas[request])
            body["properties"].pop("objectType", None)
            body["required"] = [name for name in body.get("required", []) if name != "objectType"]
            patched = f"_{request}ServerBody"
            schemas[patched] = body
            original = {"$ref": f"#/components/schemas/{request}"}
            schemas[server]["allOf"] = [
                {"$ref": f"#/components/schemas/{patched}"} if part == original else part
                for part in schemas[server]["allOf"]
            ]


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)


def is_rfc3339(value: str) -> bool:
    """An RFC 3339 date-time: a full date and time with an explicit offset."""
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _format_checker(version: SpecVersion) -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return is_rfc3339(value) or (version == "3.1.0" and value in NOW_SENTINELS)

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        # The spec's own examples use scheme-less URLs ("www.myCorporation.com/..."), so only reject the
        # unusable: empty or containing whitespace. Callback URLs get a stricter check where they are used.
        return not isinstance(value, str) or (bool(value) and not any(c.isspace() for c in value))

    @checker.checks("int32")
    def _int32(value: object) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    @checker.checks("float")
    def _float(value: object) -> bool:
        return not isinstance(value, float) or math.isfinite(value)

    return checker


def _path(error: ValidationError) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _describe(error: ValidationError, prefix: str = "") -> str:
    # anyOf/oneOf failures say only "not valid under any of the given schemas": show the closest branch.
    if error.context:
        # Prefer the branch whose type fits (an object missing 'y' is a bad point, not a bad number).
        fitting = [e for e in error.context if e.validator != "type"]
        error = best_match(fitting or error.context)
    where = (prefix + _path(error)).lstrip(".")
    return f"{where or '(whole object)'}: {error.message}"


@dataclass(frozen=True)
class SpecSchemas:
    """The component schemas of one OpenADR 3 version, ready to validate against."""

    version: SpecVersion
    schemas: Mapping[str, Any]
    event_payloads: Mapping[str, Any]
    _validators: dict[str, Draft4Validator] = field(default_factory=dict, repr=False, compare=False)
    _registry: Registry[Any] = field(default_factory=Registry, repr=False, compare=False)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.schemas)

    def _validator(self, name: str) -> Draft4Validator:
        validator = self._validators.get(name)
        if validator is None:
            if name in self.schemas:
                pointer = f"#/components/schemas/{name}"
            elif name.startswith("payload:") and name[8:] in self.event_payloads:
                pointer = f"#/x-event-payloads/{name[8:]}"
            else:
                raise KeyError(f"OpenADR {self.version} has no schema {name!r}")
            validator = Draft4Validator(
                {"$ref": _ROOT_URI.format(version=self.version) + pointer},
                registry=self._registry,
                format_checker=_format_checker(self.version),
            )
            self._validators[name] = validator
        return validator

    def problems(self, name: str, instance: object, prefix: str = "") -> list[str]:
        """Everything wrong with `instance` as a `name` (empty when it is valid), field by field."""
        errors = sorted(self._validator(name).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
        found = [_describe(error, prefix) for error in errors]
        if isinstance(instance, Mapping):
            found += self._deep_problems(name, instance, prefix)
        return found

    def _deep_problems(self, name: str, instance: Mapping[str, Any], prefix: str) -> list[str]:
        if name in ("event", "eventRequest"):
            return self._payload_problems(instance.get("intervals"), f"{prefix}.intervals")
        if name == "notification":
            schema = OBJECT_SCHEMAS.get(str(instance.get("objectType")))
            if schema is not None:
                return self.problems(schema, instance.get("object"), f"{prefix}.object")
        return []

    def _payload_problems(self, intervals: object, where: str) -> list[str]:
        """Interval payloads of an enumerated type (SIMPLE, PRICE, ...) against the payload enumeration."""
        found: list[str] = []
        for i, interval in enumerate(intervals if isinstance(intervals, list) else []):
            payloads = interval.get("payloads") if isinstance(interval, Mapping) else None
            for j, payload in enumerate(payloads if isinstance(payloads, list) else []):
                kind = payload.get("type") if isinstance(payload, Mapping) else None
                if isinstance(kind, str) and kind in self.event_payloads:
                    values = payload.get("values")
                    for error in self._validator(f"payload:{kind}").iter_errors(values):
                        found.append(_describe(error, f"{where}[{i}].payloads[{j}].values({kind})"))
        return found

    def validate(self, name: str, instance: object, what: str | None = None) -> None:
        """Raise OpenADRValidationError naming `what` (default: the schema), each bad field and why."""
        problems = self.problems(name, instance)
        if problems:
            extra = len(problems) - _MAX_PROBLEMS
            shown = problems[:_MAX_PROBLEMS] + ([f"... and {extra} more"] if extra > 0 else [])
            raise OpenADRValidationError(f"{what or name} (OpenADR {self.version})", shown)

    def request_schema(self, kind: str) -> str:
        """The schema a client's create/update body of `kind` (program, event, report, ...) must follow."""
        return REQUEST_SCHEMAS[self.version][kind]


def _build(version: SpecVersion, spec_dir: Path) -> SpecSchemas:
    spec = _load_yaml(spec_dir / SPEC_FILES[version])
    raw = spec.get("components", {}).get("schemas")
    if not isinstance(raw, dict):
        raise ConfigError(f"{spec_dir / SPEC_FILES[version]}: no components.schemas")
    schemas: dict[str, Any] = openapi_to_draft4(raw)
    _apply_errata(version, schemas)
    payloads_doc = _load_yaml(spec_dir / EVENT_PAYLOADS_FILE)
    payloads: dict[str, Any] = openapi_to_draft4(payloads_doc.get("definitions", {}))
    # One document, so the payload enumeration's '#/components/schemas/point' resolves to the spec's point.
    document = {"components": {"schemas": schemas}, "x-event-payloads": payloads}
    uri = _ROOT_URI.format(version=version)
    resource: Resource[Any] = Resource.from_contents(document, default_specification=DRAFT4)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return SpecSchemas(version=version, schemas=schemas, event_payloads=payloads, _registry=registry)


@cache
def _cached(version: SpecVersion, spec_dir: str) -> SpecSchemas:
    return _build(version, Path(spec_dir))


def load_schemas(version: SpecVersion, spec_dir: str | Path | None = None) -> SpecSchemas:
    """The schemas of OpenADR `version` from `spec_dir` (default: the packaged copy); loaded once per folder."""
    if version not in SPEC_VERSIONS:
        raise ConfigError(f"OpenADR version {version!r} is not supported; expected one of {list(SPEC_VERSIONS)}")
    folder = packaged_spec_dir() if spec_dir is None else Path(spec_dir)
    return _cached(version, str(folder.resolve()))
