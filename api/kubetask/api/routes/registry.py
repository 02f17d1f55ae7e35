"""/api/v1/namespaces/{namespace}/tasktypes and /taskqueues: what may run, and where it waits (from the cache)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from kubetask.api.auth import User
from kubetask.api.deps import Allow, Name, Namespace, gateway
from kubetask.api.routes.tasks import PREFIX, errors
from kubetask.api.schemas import TaskQueueList, TaskQueueView, TaskTypeList, TaskTypeView, taskqueue_view, tasktype_view
from kubetask.api.service import Gateway

router = APIRouter(prefix=PREFIX, tags=["registry"])


@router.get("/tasktypes", response_model=TaskTypeList, summary="List TaskTypes with their parameter schemas", responses=errors())
async def list_tasktypes(namespace: Namespace, user: User = Depends(Allow("list", "tasktypes", named=False)),
                         gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse({"items": [tasktype_view(t) for t in gw.tasktypes.items(namespace)]})


@router.get("/tasktypes/{name}", response_model=TaskTypeView, summary="Get one TaskType", responses=errors(404))
async def get_tasktype(namespace: Namespace, name: Name, user: User = Depends(Allow("get", "tasktypes")),
                       gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(tasktype_view(await gw.read(gw.tasktypes, namespace, name, "TaskType")))


@router.get("/taskqueues", response_model=TaskQueueList, summary="List TaskQueues with pending and running counts", responses=errors())
async def list_taskqueues(namespace: Namespace, user: User = Depends(Allow("list", "taskqueues", named=False)),
                          gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse({"items": [taskqueue_view(q) for q in gw.taskqueues.items(namespace)]})


@router.get("/taskqueues/{name}", response_model=TaskQueueView, summary="Get one TaskQueue", responses=errors(404))
async def get_taskqueue(namespace: Namespace, name: Name, user: User = Depends(Allow("get", "taskqueues")),
                        gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(taskqueue_view(await gw.read(gw.taskqueues, namespace, name, "TaskQueue")))
