"""/api/v1/namespaces/{namespace}/taskschedules...: list, get, create, trigger, suspend, resume.

Every view carries `nextRuns`, computed here from the current time. There is no DELETE: the
gateway deletes no Tasks either; `kubectl delete taskschedule` (with the cluster's RBAC) does it,
and the schedule's Tasks go with it (ownerReferences). Routes whose path has `{name}:verb` come
before `{name}` so they win.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kubetask.api.auth import Action, User
from kubetask.api.deps import Allow, Name, Namespace, authorize, gateway
from kubetask.api.routes.tasks import PREFIX, errors
from kubetask.api.schemas import ScheduleRequest, TaskScheduleList, TaskScheduleView, TaskView, task_view, taskschedule_view
from kubetask.api.service import SCHEDULES, Gateway

router = APIRouter(prefix=PREFIX, tags=["schedules"])


def _now() -> datetime:
    return datetime.now(timezone.utc)


@router.get("/taskschedules", response_model=TaskScheduleList, summary="List TaskSchedules with their next run times",
            responses=errors(404))
async def list_schedules(namespace: Namespace, user: User = Depends(Allow("list", SCHEDULES, named=False)),
                         gw: Gateway = Depends(gateway)) -> JSONResponse:
    now = _now()
    return JSONResponse({"items": [taskschedule_view(s, now) for s in await gw.list_schedules(namespace)]})


@router.post("/taskschedules", status_code=201, response_model=TaskScheduleView, summary="Create a TaskSchedule",
             responses=errors(409, 413, 422))
async def create_schedule(
    request: Request,
    body: ScheduleRequest,
    namespace: Namespace,
    user: User = Depends(Allow("create", SCHEDULES, named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    created = await gw.create_schedule(namespace, body, user)
    location = f"{request.scope.get('root_path', '')}{PREFIX.format(namespace=namespace)}/taskschedules/{body.name}"
    return JSONResponse(taskschedule_view(created, _now()), status_code=201, headers={"Location": location})


@router.post("/taskschedules/{name}:trigger", status_code=201, response_model=TaskView,
             summary="Create a Task from the schedule's template now (needs get taskschedules and create tasks)",
             responses=errors(404, 409, 422))
async def trigger_schedule(
    request: Request,
    namespace: Namespace,
    name: Name,
    user: User = Depends(Allow("get", SCHEDULES)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    # Reading the schedule (the dependency) is not enough: the caller creates a Task.
    await authorize(request, user, Action("create", "tasks", namespace))
    task = await gw.trigger(namespace, name, user)
    meta = task["metadata"]
    location = f"{request.scope.get('root_path', '')}{PREFIX.format(namespace=namespace)}/tasks/{meta['name']}"
    return JSONResponse(task_view(task), status_code=201, headers={"Location": location})


@router.post("/taskschedules/{name}:suspend", response_model=TaskScheduleView, summary="Stop creating Tasks (spec.suspend: true)",
             responses=errors(404))
async def suspend_schedule(namespace: Namespace, name: Name, user: User = Depends(Allow("patch", SCHEDULES)),
                           gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(taskschedule_view(await gw.set_suspend(namespace, name, True), _now()))


@router.post("/taskschedules/{name}:resume", response_model=TaskScheduleView, summary="Create Tasks again (spec.suspend: false)",
             responses=errors(404))
async def resume_schedule(namespace: Namespace, name: Name, user: User = Depends(Allow("patch", SCHEDULES)),
                          gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(taskschedule_view(await gw.set_suspend(namespace, name, False), _now()))


@router.get("/taskschedules/{name}", response_model=TaskScheduleView, summary="Get one TaskSchedule with its next run times",
            responses=errors(404))
async def get_schedule(namespace: Namespace, name: Name, user: User = Depends(Allow("get", SCHEDULES)),
                       gw: Gateway = Depends(gateway)) -> JSONResponse:
    return JSONResponse(taskschedule_view(await gw.read_schedule(namespace, name), _now()))
