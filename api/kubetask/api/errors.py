"""One error shape for every failure, and the handlers that produce it.

    {"error": {"status": 422, "reason": "Invalid", "message": "...",
               "details": [{"field": "spec.parameters.n", "message": "..."}]}}

`reason` is a CamelCase word for programs (Kubernetes' StatusReason where one fits), `message`
is for people, `details` name the fields at fault. Bad input never produces a 5xx: 5xx means the
API server (or the gateway itself) failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kubetask.kube import ApiError, TransportError
from kubetask.resources.models import MAX_PARAMETERS_BYTES
from kubetask.resources.validation import Problem, parameters_size

log = logging.getLogger("kubetask.gateway")

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
    422: "Invalid", 424: "NotCreated", 429: "TooManyRequests", 500: "InternalError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "Timeout",
}


class ErrorDetail(BaseModel):
    field: str = Field(..., description="The field at fault, as a path: spec.parameters.n, items[2].spec.type, labels[app], limit.")
    message: str = Field(..., description="What is wrong with it.")


class ErrorInfo(BaseModel):
    status: int = Field(..., description="The HTTP status code, repeated.")
    reason: str = Field(..., description="A CamelCase word for programs: Invalid, NotFound, Conflict, Forbidden, ...")
    message: str = Field(..., description="What went wrong, for people.")
    details: list[ErrorDetail] = Field(default_factory=list, description="The fields at fault, if any.")


class ErrorBody(BaseModel):
    error: ErrorInfo


class GatewayError(Exception):
    """Raised anywhere below a route; rendered as the error shape."""

    def __init__(self, status: int, message: str, *, reason: str | None = None,
                 details: Iterable[tuple[str, str]] = (), headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or REASONS.get(status, "Error")
        self.message = message
        self.details = list(details)
        self.headers = headers or {}
        self.extra = extra or {}

    def info(self) -> dict[str, Any]:
        return error_info(self.status, self.message, reason=self.reason, details=self.details)

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.info(), **self.extra}, status_code=self.status, headers=self.headers)


def error_info(status: int, message: str, *, reason: str | None = None, details: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    return {"status": status, "reason": reason or REASONS.get(status, "Error"), "message": message,
            "details": [{"field": f, "message": m} for f, m in details]}


def error_bytes(status: int, message: str, reason: str | None = None) -> bytes:
    return json.dumps({"error": error_info(status, message, reason=reason)}).encode()


def not_found(kind: str, namespace: str, name: str) -> GatewayError:
    return GatewayError(404, f"{kind} {name!r} not found in namespace {namespace}")


def invalid(problems: Sequence[Problem], prefix: str = "", what: str = "the request") -> GatewayError:
    """422 (or 413 when a problem is about size) from the shared validation's Problems."""
    too_large = [p for p in problems if p.reason == "TooLarge"]
    chosen = too_large or list(problems)
    status = 413 if too_large else 422
    summary = "; ".join(f"{prefix}{p.field}: {p.message}" for p in chosen[:3])
    if len(chosen) > 3:
        summary += f"; and {len(chosen) - 3} more"
    return GatewayError(status, f"{what} is invalid: {summary}" if status == 422 else f"{what} is too large: {summary}",
                        details=[(prefix + p.field, p.message) for p in chosen])


# ---------------------------------------------------------------------------------------------
# Field paths from pydantic locations
# ---------------------------------------------------------------------------------------------

def field_path(loc: Sequence[Any]) -> str:
    """("body", "items", 0, "spec", "type") → items[0].spec.type; ("query", "limit") → limit."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def oversized_parameters(body: Any) -> list[tuple[str, str]]:
    """Fields whose parameters exceed the size bound, in a submit or batch body that failed validation."""
    found: list[tuple[str, str]] = []
    specs: list[tuple[str, Any]] = []
    if isinstance(body, dict):
        specs.append(("spec", body.get("spec")))
        items = body.get("items")
        if isinstance(items, list):
            specs += [(f"items[{i}].spec", item.get("spec")) for i, item in enumerate(items) if isinstance(item, dict)]
    for prefix, spec in specs:
        parameters = spec.get("parameters") if isinstance(spec, dict) else None
        if isinstance(parameters, dict):
            try:
                size = parameters_size(parameters)
            except (TypeError, ValueError):
                continue
            if size > MAX_PARAMETERS_BYTES:
                found.append((f"{prefix}.parameters", f"parameters are {size} bytes serialized; at most {MAX_PARAMETERS_BYTES} are allowed"))
    return found


def validation_error(exc: RequestValidationError) -> GatewayError:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return GatewayError(400, f"the request body is not valid JSON: {reason} (at position {field_path(detail.get('loc', ()))})")
    big = oversized_parameters(getattr(exc, "body", None))
    if big:
        return GatewayError(413, f"{big[0][0]} is too large: {big[0][1]}", details=big)
    details = [(field_path(e.get("loc", ())), _message(e)) for e in errors]
    summary = "; ".join(f"{f}: {m}" for f, m in details[:3]) + (f"; and {len(details) - 3} more" if len(details) > 3 else "")
    return GatewayError(422, f"the request is invalid: {summary}", details=details)


# ---------------------------------------------------------------------------------------------
# Answers of the API server to the gateway's own requests
# ---------------------------------------------------------------------------------------------

def from_api_error(error: ApiError, what: str = "") -> GatewayError:
    prefix = f"{what}: " if what else ""
    status = error.status
    causes = ((error.body.get("details") or {}).get("causes") or []) if isinstance(error.body, dict) else []
    details = [(str(c.get("field", "")).removeprefix("."), str(c.get("message", ""))) for c in causes if isinstance(c, dict)]
    if status in (400, 422):
        return GatewayError(422, f"{prefix}the API server rejected it: {error.message}", details=details)
    if status == 404:
        return GatewayError(404, f"{prefix}{error.message}")
    if status == 409:
        return GatewayError(409, f"{prefix}{error.message}", reason=error.reason if error.reason in ("AlreadyExists", "Conflict") else "Conflict")
    if status == 413:
        return GatewayError(413, f"{prefix}the API server says the object is too large: {error.message}")
    if status == 429:
        return GatewayError(429, f"{prefix}the API server is throttling requests: {error.message}", headers={"Retry-After": "1"})
    if status in (401, 403):
        return GatewayError(502, f"{prefix}the API server refused the gateway's own credentials ({status}): {error.message}. "
                            "Check the RBAC of the gateway's ServiceAccount.")
    if status in (503, 504):
        return GatewayError(503, f"{prefix}the API server is unavailable: {error.message}", headers={"Retry-After": "1"})
    return GatewayError(502, f"{prefix}the API server answered {status} {error.reason}: {error.message}")


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------

def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(request: Request, exc: GatewayError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = validation_error(exc)
        hook = getattr(request.app.state, "on_validation_error", None)
        if hook is not None:
            error = hook(request, exc, error)
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return GatewayError(exc.status_code, message, headers=dict(exc.headers or {})).response()

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return from_api_error(exc).response()

    @app.exception_handler(TransportError)
    async def _unreachable(request: Request, exc: TransportError) -> JSONResponse:
        log.warning("API server request failed: %r", exc)
        return GatewayError(503, f"the Kubernetes API server could not be reached: {type(exc).__name__}",
                            headers={"Retry-After": "1"}).response()

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return GatewayError(500, "internal error in the gateway (logged)").response()
