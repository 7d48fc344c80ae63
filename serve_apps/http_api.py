"""HTTP API: OpenAI-compatible embeddings, routing explain, regions, health and admin, over a GatewayCore."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from batch.spec import BatchJobSpec
from fleet.times import iso
from grid.signal_health import status_to_dict
from openadr.status import STATUS_PATH as OPENADR_STATUS_PATH
from policies.control_api import ControlApi
from policies.control_state import ControlState
from policies.deferral import DEFER_HEADER, defer_limit_s
from router.route_types import decision_to_dict, request_to_dict
from router.state import snapshot_to_dict
from serve_apps.api_schema import (
    TOKEN_IDS_HELP,
    ApiError,
    EmbeddingsRequest,
    EventRequest,
    FastJSONResponse,
    error_body,
    is_token_ids,
    read_json,
    validated,
)
from serve_apps.backends import RegionalResult
from serve_apps.batch_api import PATH as BATCH_PATH
from serve_apps.batch_api import batch_router
from serve_apps.console import mount_console
from serve_apps.deferral import DeferralFull, DeferralQueue
from serve_apps.events_api import events_router
from serve_apps.gateway import GatewayCore, NoRegionAvailable, RegionsFull, Served
from serve_apps.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serve_apps.metrics import exposition, region_staleness
from serve_apps.openapi_doc import document
from serve_apps.provider import Provider
from serve_apps.provider_api import QuoteRequest, TenantCreate, mount_provider
from serve_apps.region_health import Readiness
from serve_apps.tenant_auth import Caller, admin_dependency, current_caller
from serve_apps.training_api import PATH as TRAINING_PATH
from serve_apps.training_api import TrainingLauncher, training_router
from training.spec import TrainingJobSpec

logger = logging.getLogger("gridshift.http")

API_VERSION = "v1"
TELEMETRY_TIMEOUT_S = 1.0  # /v1/regions waits this long for policy figures, then answers without them


def _hint_error(param: str, message: str) -> ApiError:
    return ApiError(422, f"header {param}: {message}", param=param)


def create_app(
    core: GatewayCore,
    admin_token_sha256: str | None,
    provider: Provider | None = None,
    training_launcher: TrainingLauncher | None = None,
) -> FastAPI:
    """The gateway's ASGI app. `admin_token_sha256` is the digest of the admin bearer token; the plain
    token never reaches the gateway, and None disables the admin API (every admin call is 401)."""
    fleet = core.fleet
    limits = fleet.gateway
    tenancy = provider or Provider(fleet)
    deferrals = DeferralQueue(fleet)  # tier-3 calls held while only regions in grid emergency could serve them
    # OpenAI's model object; `created` is when this gateway started (the fleet serves one model, by config).
    model_card = {
        "id": fleet.serving.model_name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "gridshift",
    }

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        core.start()
        # Tenants (docs/tenants.md): with auth required, fails here if its database is away; collects job usage.
        await tenancy.start(core.control)
        try:
            yield
        finally:
            await tenancy.stop()
            await core.stop()

    app = FastAPI(
        title="gridshift",
        version="0.1.0",
        description="Routes latency-tolerant inference to the region with the most grid headroom.",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(error_body(error.message, error.kind, error.param), error.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", ""))}
            for item in error.errors()
        ]
        message = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields) or "invalid request"
        return JSONResponse(error_body(message, "invalid_request_error", fields=fields), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(error.detail), "invalid_request_error"), error.status_code)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, error: Exception) -> JSONResponse:
        # A bug, never the client's fault: logged with its trace, answered in the API's one error shape.
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(
            error_body(f"internal error ({type(error).__name__}); see the gateway's log", "server_error"), 500
        )

    admin = admin_dependency(admin_token_sha256)
    admin_only = [Depends(admin)]
    app.include_router(training_router(core, admin_only, training_launcher))  # /v1/training/jobs
    app.include_router(batch_router(core, admin_only))  # /v1/batch/jobs
    app.include_router(events_router(core, admin_only))  # /v1/admin/events

    def parse_hints(
        workload_class: str | None, budget: str | None, origin: str | None
    ) -> tuple[str, float | None, str]:
        name = (workload_class or "tolerant").strip().lower()
        known = {n for n, c in fleet.workload_classes.items() if c.latency_budget_ms is not None}
        if name not in known:
            raise _hint_error("X-Gridshift-Class", f"must be one of {sorted(known)}, got {workload_class!r}")
        budget_ms: float | None = None
        if budget is not None:
            try:
                budget_ms = float(budget)
            except ValueError:
                raise _hint_error("X-Gridshift-Latency-Budget-Ms", f"not a number: {budget!r}") from None
            if not 0 < budget_ms <= limits.max_latency_budget_ms:
                raise _hint_error(
                    "X-Gridshift-Latency-Budget-Ms", f"must be in (0, {limits.max_latency_budget_ms:g}], got {budget}"
                )
        region = (origin or fleet.default_origin).strip()
        if region not in core.rtt_ms:
            raise _hint_error("X-Gridshift-Origin", f"unknown region {region!r}")
        return name, budget_ms, region

    @app.post("/v1/embeddings")
    async def embeddings(
        raw: Request,
        caller: Annotated[Caller, Depends(current_caller)],
        x_gridshift_class: Annotated[str | None, Header()] = None,
        x_gridshift_latency_budget_ms: Annotated[str | None, Header()] = None,
        x_gridshift_origin: Annotated[str | None, Header()] = None,
        x_request_id: Annotated[str | None, Header(max_length=80)] = None,
        x_gridshift_defer_max_s: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        workload_class, budget_ms, origin = parse_hints(
            x_gridshift_class, x_gridshift_latency_budget_ms, x_gridshift_origin
        )
        body = await read_json(raw, max_bytes=limits.max_input_items * (limits.max_input_chars * 4 + 16) + 4096)
        if isinstance(body, dict) and is_token_ids(body.get("input")):
            raise ApiError(422, TOKEN_IDS_HELP, param="input")
        request = validated(EmbeddingsRequest, body)
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts:
            raise ApiError(422, "input: must not be empty", param="input")
        if len(texts) > limits.max_input_items:
            raise ApiError(
                413, f"input: {len(texts)} items exceeds the limit of {limits.max_input_items}", param="input"
            )
        longest = max(len(text) for text in texts)
        if longest > limits.max_input_chars:
            raise ApiError(
                413,
                f"input: a string of {longest} characters exceeds the limit of {limits.max_input_chars}",
                param="input",
            )
        tiered = tenancy.route(core, caller, origin, workload_class, budget_ms)  # the caller's flexibility tier
        await tenancy.admit(caller, len(texts))  # rate limits (429), cluster-wide
        route = tiered.request
        try:
            limit_s = defer_limit_s(x_gridshift_defer_max_s, fleet.tenants.defer_max_s)
        except ValueError as error:
            raise _hint_error(DEFER_HEADER, str(error)) from None
        try:
            # Tier 3 may wait (bounded) for a region out of grid emergency: docs/tenants.md#tier-3-deferral.
            deferred = await deferrals.hold(core, tiered.tier, route, limit_s)
            served = await core.serve(route, texts)
        except DeferralFull as full:
            headers = {"Retry-After": str(full.retry_after_s)}
            return JSONResponse(error_body(str(full), "overloaded"), 503, headers=headers)
        except RegionsFull as error:  # at once, never after a wait: the client backs off and retries
            headers = {"Retry-After": str(error.retry_after_s)}
            return JSONResponse(error_body(str(error), "overloaded"), 503, headers=headers)
        except NoRegionAvailable as error:
            return JSONResponse(error_body(str(error), "service_unavailable"), 503, headers={"Retry-After": "1"})
        held = deferred.outcome is not None
        usage = await tenancy.served(core, caller, tiered, served, len(texts), x_request_id, held)  # tenants' usage
        headers = {**_routing_headers(served), **usage, **deferred.headers()}
        return FastJSONResponse(embeddings_body(served.result, request.encoding_format), headers=headers)

    @app.get("/v1/route")
    async def route_explain(
        origin: Annotated[str | None, Query()] = None,
        workload_class: Annotated[str | None, Query(alias="class")] = None,
        budget_ms: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        name, budget, region = parse_hints(workload_class, budget_ms, origin)
        route = core.route_request(region, name, budget)
        state = await core.ready_state()
        decision = core.decide(route, state, explain=True)
        return {
            "schema": "gridshift.route_explain/v1",
            "at": iso(state.snapshot.at_s),
            "state_version": state.version,
            "request": request_to_dict(route),
            "decision": decision_to_dict(decision),
        }

    @app.get("/v1/regions")
    async def regions() -> dict[str, Any]:
        state = await core.ready_state()
        body = regions_body(state)
        try:
            # Policy, load and power are best-effort figures for operators: never a reason to fail this call.
            telemetry: dict[str, Any] | None = await asyncio.wait_for(
                core.control.call(ControlApi.telemetry), TELEMETRY_TIMEOUT_S
            )
        except Exception:
            logger.warning("control telemetry unavailable; /v1/regions without policy figures", exc_info=True)
            telemetry = None
        body["policy"] = None if telemetry is None else telemetry.get("policy")
        body["calibration"] = None if telemetry is None else telemetry.get("calibration")
        per_region = {} if telemetry is None else telemetry.get("regions", {})
        paces = core.admission_paces(state)
        for region in body["regions"]:
            name = region["region"]
            region["gateway"] = {
                "in_flight": core.in_flight[name],
                "served": core.served_by_region[name],
                "marked_down": name in core.health.down,
                # The pace the region was seen to deliver while busy (None until seen long enough), and the one
                # admission costs its queue at (that, or the calibration scaled as the other regions' paces are).
                "busy_seconds_per_item": core.pace[name].seconds_per_item(),
                "admission_seconds_per_item": round(paces[name], 6),
            }
            extra = per_region.get(name, {})
            region["load"] = extra.get("load")
            region["policy"] = extra.get("policy")
            region["knob_reason"] = extra.get("knob_reason")
        return body

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(await exposition(core), media_type=METRICS_CONTENT_TYPE)

    @app.get(OPENADR_STATUS_PATH)
    async def openadr_status() -> dict[str, Any]:
        status = await core.control.call(ControlApi.openadr_status)
        if status is None:
            raise ApiError(
                404,
                "no OpenADR VEN status: the fleet has no openadr section, or its VEN has not reported yet",
                kind="not_found_error",
            )
        return status

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 once every region has answered, warmed up at every precision the policy may use (load
        balancers, Kubernetes and `gridshift up` wait on this); 503 with what it waits for until then."""
        readiness = await core.readiness()
        body = readiness_body(readiness, core.warm_precisions)
        if readiness.ready:
            return JSONResponse(body)
        waiting = sorted(name for name, region in readiness.regions.items() if not region.ready)
        message = "starting: waiting for " + (f"regions {waiting}" if waiting else "the control state")
        return JSONResponse({**body, **error_body(message, "service_unavailable")}, 503, headers={"Retry-After": "1"})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != model_card["id"]:
            raise ApiError(
                404,
                f"no model {model_id!r}: this fleet serves {model_card['id']!r}",
                kind="not_found_error",
                param="model",
            )
        return model_card

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the gateway process answers. Whether it can serve yet is /readyz."""
        state = core.state
        return {
            "status": "ok",
            "state_version": None if state is None else state.version,
            "regions_down": sorted(core.health.down),
        }

    mount_console(app, core)  # the operator console: /console and its read-only data endpoints
    mount_provider(app, core, tenancy, admin_token_sha256)  # prices, quotes, usage, tenants' admin API
    document(
        app,
        {
            ("/v1/embeddings", "post"): EmbeddingsRequest,
            ("/v1/admin/events", "post"): EventRequest,
            (BATCH_PATH, "post"): BatchJobSpec,
            (TRAINING_PATH, "post"): TrainingJobSpec,
            ("/v1/quotes", "post"): QuoteRequest,
            ("/v1/admin/tenants", "post"): TenantCreate,
        },
    )
    return app


def readiness_body(readiness: Readiness, precisions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "status": "ready" if readiness.ready else "starting",
        "state_version": readiness.state_version,
        "precisions": list(precisions),
        "regions": {
            name: {"ready": region.ready, "warmed": list(region.warmed), "detail": region.detail}
            for name, region in readiness.regions.items()
        },
    }


def embeddings_body(result: RegionalResult, encoding_format: str = "float") -> dict[str, Any]:
    """The OpenAI embeddings answer for a region's result."""
    data = []
    for index, vector in enumerate(result.embeddings):
        embedding: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode()
            if encoding_format == "base64"
            else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }


def _routing_headers(served: Served) -> dict[str, str]:
    decision = served.decision
    reason = decision.reason.value
    if served.result.region != decision.region:
        reason = f"failover:{reason}"  # served by a fallback after the chosen region failed or was full
    return {
        "X-Gridshift-Region": served.result.region,
        "X-Gridshift-Reason": reason,
        "X-Gridshift-Headroom": f"{served.headroom:.4f}",
        "X-Gridshift-Precision": served.result.precision,
        "X-Gridshift-State-Version": str(served.state_version),
        "X-Gridshift-Attempts": ",".join(served.attempts),
        "X-Gridshift-Full": ",".join(served.full),  # skipped at their admission bound, before the attempts
    }


def regions_body(state: ControlState) -> dict[str, Any]:
    """`GET /v1/regions`: the snapshot (signals with units, headroom, stress, health, load) plus the knobs in force
    and where they come from (operator, policy or defaults)."""
    body = snapshot_to_dict(state.snapshot)
    for region, snap in zip(body["regions"], state.snapshot.regions, strict=True):
        region["knobs"] = state.knobs[region["region"]].model_dump(mode="json")
        region["knob_source"] = state.knob_sources.get(region["region"])
        region["staleness"] = region_staleness(snap, state.snapshot.at_s)
    # Live fleets: each signal source's health (docs/signals.md); null for a trace fleet.
    body["signal_sources"] = None if state.signals is None else status_to_dict(state.signals)["sources"]
    return body
