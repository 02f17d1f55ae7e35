"""/api/v1/namespaces/{namespace}/deadletter: Tasks that failed for good, and their bulk re-run.

What counts as dead-lettered, and how a re-run is written, is in kubetask.api.deadletter.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from kubetask.api import deadletter
from kubetask.api.auth import Action, User
from kubetask.api.deps import Allow, Namespace, authorize, gateway
from kubetask.api.routes.tasks import PREFIX, ContinueToken, SelectorFilter, errors
from kubetask.api.schemas import NAME_PATTERN, REASON_PATTERN, DeadLetterList, DeadLetterRerunRequest, DeadLetterRerunResponse
from kubetask.api.service import Gateway
from kubetask.resources.models import MAX_NAME

router = APIRouter(prefix=PREFIX, tags=["deadletter"])


@router.get("/deadletter", response_model=DeadLetterList, responses=errors(422),
            summary="List dead-lettered Tasks (current run Failed), newest first, from the cache")
async def list_deadletter(
    namespace: Namespace,
    queue: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="Only Tasks of this TaskQueue.")] = None,
    type: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="Only Tasks of this TaskType.")] = None,
    reason: Annotated[str | None, Query(min_length=1, max_length=128, pattern=REASON_PATTERN,
                                        description="Only Tasks that failed for this reason (BackoffLimitExceeded, PodFailurePolicy, "
                                                    "DeadlineExceeded, InvalidParameters, ...).")] = None,
    label_selector: SelectorFilter = None,
    limit: Annotated[int | None, Query(ge=1, le=5000, description="Page size (default 100, at most the gateway's list_max_limit).")] = None,
    continue_: ContinueToken = None,
    user: User = Depends(Allow("list", named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    filters = deadletter.Filters(queue, type, reason, label_selector)
    size = min(limit or gw.settings.list_default_limit, gw.settings.list_max_limit)
    return JSONResponse(deadletter.listing(gw, namespace, filters, size, continue_))


@router.post("/deadletter:rerun", response_model=DeadLetterRerunResponse, responses=errors(422),
             summary="Re-run dead-lettered Tasks, by name or by filter (spec.rerun + 1 each); one outcome per Task")
async def rerun_deadletter(
    request: Request,
    body: DeadLetterRerunRequest,
    namespace: Namespace,
    user: User = Depends(Allow("patch", named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    deadletter.check(body, gw.settings.rerun_max_items)
    if body.filter is not None:
        # A filter reveals which Tasks match (their names are in the answer): as listing them does.
        await authorize(request, user, Action("list", "tasks", namespace))
    return JSONResponse(await deadletter.rerun(gw, namespace, body))
