"""The OpenAPI document's parts FastAPI cannot infer: bodies the routes read themselves, and the one error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serve_apps.api_schema import ErrorBody

REF = "#/components/schemas/{model}"


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def document(app: FastAPI, bodies: Mapping[tuple[str, str], type[BaseModel]]) -> None:
    """Declare `bodies` ((path, method) -> model) as the routes' request bodies, and ErrorBody as every error answer.

    The embeddings, event and batch routes read their raw body so that its size and depth are bounded before it is
    parsed; FastAPI then knows nothing of it, and /docs could not send one. Every 4xx/5xx answer has one shape
    (serve_apps.api_schema.ErrorBody), FastAPI's own validation errors included (the app's handler rewrites them).
    """
    build = app.openapi  # FastAPI's builder; ours decorates its result once

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        models: list[type[BaseModel]] = [ErrorBody, *dict.fromkeys(bodies.values())]
        _, top = models_json_schema([(model, "validation") for model in models], ref_template=REF)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(top.get("$defs", {}))
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's error shape, which this API never sends
            components.pop(name, None)
        for (path, method), model in bodies.items():
            schema["paths"][path][method]["requestBody"] = {"required": True, "content": _json(model)}
        for operations in schema["paths"].values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = {
                    "description": "The request is at fault; the message says how.",
                    "content": _json(ErrorBody),
                }
                responses["5XX"] = {
                    "description": "The service is at fault (503: try again).",
                    "content": _json(ErrorBody),
                }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
