"""`create_app(settings, kube)`: the FastAPI application (tests build it directly; main() serves it)."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from kubetask.api import dashboard, errors, selectors
from kubetask.api.auth import Authorizer, DevAuthorizer, KubeAuthorizer
from kubetask.api.errors import GatewayError
from kubetask.api.logs import LogSource
from kubetask.api.metrics import GatewayMetrics
from kubetask.api.middleware import BodyLimitMiddleware, MethodMiddleware, MetricsMiddleware
from kubetask.api.routes import deadletter, groups, health, registry, schedules, tasks
from kubetask.api.service import Gateway, KubeClient, batch_failure
from kubetask.api.settings import GatewaySettings
from kubetask.kube import Connection, Kube

log = logging.getLogger("kubetask.gateway")
_ITEM = re.compile(r"^items\[(\d+)\]")

DESCRIPTION = """\
Submit, inspect, follow, cancel and retry kubetask Tasks over REST; list the dead-lettered ones
(failed for good) and re-run them in bulk; list, create, trigger, suspend and resume TaskSchedules; submit a batch
as a TaskGroup and follow its progress. Every call carries a Kubernetes bearer token (`Authorization: Bearer ...`);
the cluster's RBAC decides what it may do (TokenReview + SubjectAccessReview on `tasks.kubetask.io`,
`taskschedules.kubetask.io`, ... in the path's namespace). Task reads come from a watch-backed
cache, TaskSchedule and TaskGroup reads from the API server; writes go to the API server. Errors share one shape:
`{"error": {"status", "reason", "message", "details": [{"field", "message"}]}}`.
See docs/gateway.md.
"""


def _batch_validation(request: Request, exc: RequestValidationError, error: GatewayError) -> GatewayError:
    """A batch whose items fail the request schema still gets one result per item."""
    body = getattr(exc, "body", None)
    if not request.url.path.endswith("/tasks:batch") or error.status not in (413, 422) or not isinstance(body, dict):
        return error
    items = body.get("items")
    if not isinstance(items, list) or not items:
        return error
    by_item: dict[int, list[tuple[str, str]]] = {}
    for field, message in error.details:
        match = _ITEM.match(field)
        if match is None:
            return error  # a problem with the batch as a whole (e.g. too many items)
        by_item.setdefault(int(match.group(1)), []).append((field, message))
    found = {index: errors.error_info(error.status, f"item {index} is invalid: " + "; ".join(f"{f}: {m}" for f, m in details[:3]),
                                      details=details)
             for index, details in by_item.items() if index < len(items)}
    if not found:
        return error
    names = [item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None for item in items]
    return batch_failure(found, len(items), names)


def create_app(settings: GatewaySettings | None = None, kube: KubeClient | None = None,
               authorizer: Authorizer | None = None) -> FastAPI:
    """The gateway. Without `kube`, it connects with settings.kubeconfig (else $KUBECONFIG / in-cluster)
    at start and closes the client at shutdown; a given `kube` stays the caller's."""
    settings = settings or GatewaySettings()
    settings.check_dev_mode()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own: Kube | None = None
        client: KubeClient
        if kube is None:
            own = Kube(await Connection.resolve(settings.kubeconfig, settings.kube_context))
            client = own
        else:
            client = kube
        auth: Authorizer
        if authorizer is not None:
            auth = authorizer
        elif settings.dev_no_auth:
            auth = DevAuthorizer()
        else:
            auth = KubeAuthorizer(client, settings.auth_cache_seconds, settings.auth_cache_size, settings.token_audiences, metrics)
        if auth.dev_mode:
            banner = "!" * 100
            log.warning("%s\nDEVELOPMENT MODE: authentication and authorization are OFF (KUBETASK_GATEWAY_DEV_NO_AUTH=true). "
                        "Anyone who reaches %s:%s acts with the gateway's own permissions. Never use this outside a laptop.\n%s",
                        banner, settings.host, settings.port, banner)
        gw = Gateway(settings, client, auth, metrics)
        app.state.gateway = gw
        app.state.logs = LogSource(client.connection)
        gw.start()
        scope = ", ".join(settings.namespaces) or "all namespaces"
        log.info("kubetask gateway serving %s on %s:%s", scope, settings.host, settings.port)
        try:
            yield
        finally:
            await gw.stop()
            await app.state.logs.close()
            if own is not None:
                await own.close()

    app = FastAPI(title="kubetask gateway", version="v1", description=DESCRIPTION, lifespan=lifespan,
                  root_path=settings.root_path, openapi_tags=[
                      {"name": "tasks", "description": "Submit, read, follow, cancel and retry Tasks."},
                      {"name": "registry", "description": "TaskTypes (what may run) and TaskQueues (admission)."},
                      {"name": "schedules", "description": "TaskSchedules: list, see the next runs, create, trigger now, suspend and resume."},
                      {"name": "deadletter", "description": "Tasks whose current run Failed for good, newest first; re-run them in bulk."},
                      {"name": "groups", "description": "TaskGroups: many Tasks followed as one, with counts, progress and a callback."},
                      {"name": "health", "description": "Probes and metrics (no authentication)."}])
    app.state.on_validation_error = _batch_validation
    errors.install(app)
    app.include_router(tasks.router)
    app.include_router(registry.router)
    app.include_router(schedules.router)
    app.include_router(deadletter.router)
    app.include_router(groups.router)
    app.include_router(health.router)
    dashboard.mount(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MethodMiddleware, document=lambda: app.openapi())  # outside the body limit: a 405 reads no body
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    _declare_body_errors(app, settings)
    return app


def _declare_body_errors(app: FastAPI, settings: GatewaySettings) -> None:
    """Every operation that takes a body can answer 400 (not JSON, or a bad Content-Length) and 413
    (over max_body_bytes, from BodyLimitMiddleware) before any route runs: say so in the document."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    responses = operation.setdefault("responses", {})
                    for status, description in (("400", "The body is not JSON (or Content-Length is not a number)"),
                                                ("413", "The body is larger than max_body_bytes")):
                        responses.setdefault(status, {"description": description, "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
        _tighten(schema, settings)
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


LABEL_KEY = selectors.LABEL_KEY_PATTERN
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
POSITIVE_QUANTITY = r"^\+?([0-9]*[1-9][0-9]*([.][0-9]*)?|[0-9]*[.][0-9]*[1-9][0-9]*)([mkMGTPE]|[KMGTPE]i)?$"


def _tighten(schema: dict[str, Any], settings: GatewaySettings) -> None:
    """Constraints the gateway enforces that the shared models cannot state, so that a request valid by
    the document is not refused for its shape (schemathesis checks both ways):

    - `after` names each Task once: the CRD cannot say so (Kubernetes refuses uniqueItems in
      structural schemas), so the operator's model does not;
    - a new Task (SubmitRequest, also each batch item) starts at `rerun` 0 and not cancelled, while
      the shared `TaskSpec` (also in answers) allows any run;
    - every `labelSelector` follows the selector syntax (see selectors.SELECTOR_PATTERN);
    - `resources.cpu` and `.memory` are positive quantities (the CRD says it in CEL, which no
      OpenAPI tool reads; the pattern is narrower: no exponents);
    - `labels` and `annotations` have valid keys, labels valid values; `Idempotency-Key` is
      printable ASCII (submit.idempotency_key_problem);
    - a batch and a by-name re-run hold at most this gateway's batch_max_items / rerun_max_items."""
    components = schema.get("components", {}).get("schemas", {})
    for node in _walk(schema):
        properties = node.get("properties")
        if not isinstance(properties, dict):
            continue
        after = properties.get("after")
        if isinstance(after, dict) and "items" in json.dumps(after):
            after["uniqueItems"] = True
        selector = properties.get("labelSelector")
        if isinstance(selector, dict):
            selector["pattern"] = selectors.SELECTOR_PATTERN
        for field, value_pattern in (("labels", LABEL_VALUE), ("annotations", None)):
            prop = properties.get(field)
            for variant in [prop, *(prop.get("anyOf") or [])] if isinstance(prop, dict) else []:
                if isinstance(variant, dict) and variant.get("type") == "object":
                    variant["propertyNames"] = {"pattern": LABEL_KEY}
                    if value_pattern is not None:
                        variant["additionalProperties"] = {"type": "string", "pattern": value_pattern}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("name") == "Idempotency-Key":
                    for variant in [parameter.get("schema", {}), *parameter.get("schema", {}).get("anyOf", [])]:
                        if variant.get("type") == "string" or variant is parameter.get("schema"):
                            variant["pattern"] = r"^[!-~]+$"
    for field in ("cpu", "memory"):
        quantity = components.get("Resources", {}).get("properties", {}).get(field)
        if isinstance(quantity, dict):
            quantity["pattern"] = POSITIVE_QUANTITY
    for model, field, bound in (("BatchRequest", "items", settings.batch_max_items),
                                ("DeadLetterRerunRequest", "names", settings.rerun_max_items)):
        prop = components.get(model, {}).get("properties", {}).get(field)
        for variant in [prop, *(prop.get("anyOf") or [])] if isinstance(prop, dict) else []:
            if isinstance(variant, dict) and variant.get("type") == "array":
                variant["maxItems"] = min(int(variant.get("maxItems", bound)), bound)
    if "TaskSpec" in components and "SubmitRequest" in components:
        new = copy.deepcopy(components["TaskSpec"])
        new["title"] = "NewTaskSpec"
        new["properties"]["rerun"] = {**new["properties"].get("rerun", {}), "maximum": 0}
        new["properties"]["cancel"] = {**new["properties"].get("cancel", {}), "enum": [False]}
        components["NewTaskSpec"] = new
        spec = components["SubmitRequest"]["properties"]["spec"]
        spec["$ref"] = "#/components/schemas/NewTaskSpec"


def openapi(settings: GatewaySettings | None = None) -> dict[str, Any]:
    """The OpenAPI document, without a cluster (for docs and clients)."""
    return create_app(settings or GatewaySettings(dev_no_auth=False)).openapi()
