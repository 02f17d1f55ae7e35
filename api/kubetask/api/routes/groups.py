"""/api/v1/namespaces/{namespace}/taskgroups...: list, get, create (empty).

A batch creates a group with its members in one call (`POST .../tasks:batch` with `group`, in
routes/tasks.py). There is no DELETE, as for TaskSchedules: `kubectl delete taskgroup` (with the
cluster's RBAC) does it, and the members the gateway created go with it (ownerReferences).
What the views hold, and why groups are read live, is in kubetask.api.groups.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from kubetask.api import groups
from kubetask.api.auth import User
from kubetask.api.deps import Allow, Name, Namespace, gateway
from kubetask.api.routes.tasks import CONTINUE_DESCRIPTION, CONTINUE_PATTERN, PREFIX, errors
from kubetask.api.schemas import GroupRequest, TaskGroupList, TaskGroupView
from kubetask.api.service import Gateway

router = APIRouter(prefix=PREFIX, tags=["groups"])


@router.get("/taskgroups", response_model=TaskGroupList, summary="List TaskGroups with their counts and progress (API server)",
            responses=errors(404, 422))
async def list_groups(
    namespace: Namespace,
    limit: Annotated[int | None, Query(ge=1, le=5000, description="Page size (default 100, at most the gateway's list_max_limit).")] = None,
    continue_: Annotated[str | None, Query(alias="continue", max_length=4096, json_schema_extra={"pattern": CONTINUE_PATTERN},
                                           description=CONTINUE_DESCRIPTION + " (The API server's own token.)")] = None,
    user: User = Depends(Allow("list", groups.GROUPS, named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    size = min(limit or gw.settings.list_default_limit, gw.settings.list_max_limit)
    return JSONResponse(await groups.list_groups(gw, namespace, size, continue_))


@router.post("/taskgroups", status_code=201, response_model=TaskGroupView,
             summary="Create a TaskGroup without members (they join by the label kubetask.io/group=<name>)",
             responses=errors(409, 413, 422))
async def create_group(
    request: Request,
    body: GroupRequest,
    namespace: Namespace,
    user: User = Depends(Allow("create", groups.GROUPS, named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    created = await groups.create_group(gw, namespace, body, user)
    location = f"{request.scope.get('root_path', '')}{PREFIX.format(namespace=namespace)}/taskgroups/{body.name}"
    return JSONResponse(groups.view(created), status_code=201, headers={"Location": location})


@router.get("/taskgroups/{name}", response_model=TaskGroupView, summary="Get one TaskGroup with its counts and progress",
            responses=errors(404))
async def get_group(namespace: Namespace, name: Name, user: User = Depends(Allow("get", groups.GROUPS)),
                    gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(groups.view(await groups.read_group(gw, namespace, name)))
