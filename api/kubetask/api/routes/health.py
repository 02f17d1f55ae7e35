"""/healthz (the process answers), /readyz (API server reachable and caches synced), /metrics."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from kubetask.api.deps import gateway
from kubetask.api.schemas import Health
from kubetask.api.service import Gateway
from kubetask.kube import ApiError, TransportError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process serves requests")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok", "checks": {}})


@router.get("/readyz", response_model=Health, summary="Readiness: the API server answers and every cache has listed and is watching",
            responses={503: {"model": Health, "description": "Not ready; checks say why"}})
async def readyz(request: Request, gw: Gateway = Depends(gateway)) -> JSONResponse:
    checks: dict[str, str] = {}
    state = request.app.state
    if time.monotonic() - getattr(state, "api_ok_at", float("-inf")) > gw.settings.ready_check_seconds:
        try:
            await asyncio.wait_for(gw.kube.get("/version"), timeout=3)
            state.api_ok_at = time.monotonic()
            checks["apiserver"] = "ok"
        except (ApiError, TransportError, OSError, asyncio.TimeoutError) as error:
            checks["apiserver"] = f"unreachable: {type(error).__name__}: {error}"[:300]
    else:
        checks["apiserver"] = "ok"
    for cache in gw.caches:
        problems = cache.problems()
        checks[f"cache:{cache.plural}"] = "; ".join(problems)[:300] if problems else "ok"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(gw: Gateway = Depends(gateway)) -> Response:
    return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)
