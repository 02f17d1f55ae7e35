"""/api/v1/namespaces/{namespace}/tasks...: submit, batch, get, list, watch, cancel, retry, log.

Custom methods use a colon (tasks:batch, tasks/{name}:cancel, ...), sub-resources a slash
(tasks/{name}/log). Routes whose path has `{name}:verb` come before `{name}` so they win.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from kubetask.api import groups, selectors, streams, submit
from kubetask.api.auth import Action, User
from kubetask.api.deps import Allow, Name, Namespace, authorize, gateway
from kubetask.api.errors import ErrorBody, GatewayError
from kubetask.api.schemas import BatchRequest, BatchResponse, RetryRequest, SubmitRequest, TaskList, TaskView, task_view
from kubetask.api.service import Gateway, ListFilters
from kubetask.resources.models import Phase

PREFIX = "/api/v1/namespaces/{namespace}"
router = APIRouter(prefix=PREFIX, tags=["tasks"])


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "Malformed request", 401: "No or invalid token", 403: "Not allowed by the cluster's RBAC",
                 404: "Not found", 409: "Conflict", 413: "Too large", 422: "Invalid (details name the fields)",
                 429: "Too many event streams open (see Retry-After)",
                 502: "The cluster failed to answer", 503: "The API server is unavailable"}
    return {code: {"model": ErrorBody, "description": described.get(code, "Error")} for code in (401, 403, *codes)}


SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "A text/event-stream of Task events (see docs/gateway.md)",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}}}

CONTINUE_PATTERN = r"^[A-Za-z0-9_-]*=*$"  # base64url, the gateway's tokens and the API server's alike
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=submit.MAX_IDEMPOTENCY_KEY,
                                              description="Makes a retried submission return the same Task instead of creating another.")]
TypeFilter = Annotated[str | None, Query(max_length=63, description="Only Tasks of this TaskType.")]
QueueFilter = Annotated[str | None, Query(max_length=63, description="Only Tasks of this TaskQueue.")]
PhaseFilter = Annotated[Phase | None, Query(description="Only Tasks in this phase.")]
# The patterns are in the document only (json_schema_extra): the parsers behind them accept at least
# as much and name the problem precisely, where a pattern failure would only say "does not match".
SelectorFilter = Annotated[str | None, Query(alias="labelSelector", max_length=4096, json_schema_extra={"pattern": selectors.SELECTOR_PATTERN},
                                             description="A Kubernetes label selector, e.g. team=a,env in (prod,dev).")]
CONTINUE_DESCRIPTION = ("The `continue` token of the previous page, unchanged, with the same filters. It is opaque: a token "
                        "that no page issued, or one issued for other filters, is 422, whatever it looks like.")
ContinueToken = Annotated[str | None, Query(alias="continue", max_length=1024, json_schema_extra={"pattern": CONTINUE_PATTERN},
                                            description=CONTINUE_DESCRIPTION)]


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    problem = submit.idempotency_key_problem(value)
    if problem:
        raise GatewayError(422, f"Idempotency-Key {problem}", details=[("Idempotency-Key", problem)])
    return value


def _task_response(task: dict[str, Any], status: int, request: Request) -> JSONResponse:
    meta = task["metadata"]
    headers = {"Location": f"{request.scope.get('root_path', '')}{PREFIX.format(namespace=meta['namespace'])}/tasks/{meta['name']}"}
    if status == 200 and request.method == "POST":
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(task_view(task), status_code=status, headers=headers)


@router.post("/tasks", status_code=201, response_model=TaskView, summary="Submit a Task",
             responses={200: {"model": TaskView, "description": "Replay: this Idempotency-Key already created the Task"},
                        **errors(409, 413, 422)})
async def submit_task(
    request: Request,
    body: SubmitRequest,
    namespace: Namespace,
    idempotency_key: IdempotencyKey = None,
    user: User = Depends(Allow("create")),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    status, task = await gw.submit(namespace, body, user, _key(idempotency_key))
    return _task_response(task, status, request)


@router.post("/tasks:batch", status_code=201, response_model=BatchResponse,
             summary="Submit several Tasks, all or none; with `group`, as the members of a new TaskGroup (needs create taskgroups too)",
             responses={207: {"model": BatchResponse, "description": "Checked and dry-run, but some items failed at the API server "
                                                                     "(each item has its own status; the created ones stay)"},
                        **errors(409, 413, 422)})
async def submit_batch(
    request: Request,
    body: BatchRequest,
    namespace: Namespace,
    idempotency_key: IdempotencyKey = None,
    user: User = Depends(Allow("create")),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    if body.group is not None:  # creating Tasks does not entitle anyone to create TaskGroups
        await authorize(request, user, Action("create", groups.GROUPS, namespace))
    results, group = await gw.submit_batch(namespace, body.items, user, _key(idempotency_key), body.group)
    statuses = {r["status"] for r in results}
    status = 201 if statuses <= {200, 201} else 207  # 207: created, but some item failed at the API server
    answer: dict[str, Any] = {"items": results}
    if group is not None:
        answer["group"] = groups.view(group)
    return JSONResponse(answer, status_code=status)


@router.get("/tasks", response_model=TaskList, summary="List Tasks (from the cache), filtered and paginated", responses=errors(422))
async def list_tasks(
    namespace: Namespace,
    type: TypeFilter = None,
    queue: QueueFilter = None,
    phase: PhaseFilter = None,
    label_selector: SelectorFilter = None,
    limit: Annotated[int | None, Query(ge=1, le=5000, description="Page size (default 100, at most the gateway's list_max_limit).")] = None,
    continue_: ContinueToken = None,
    user: User = Depends(Allow("list", named=False)),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    filters = ListFilters(type, queue, phase.value if phase else None, label_selector)
    size = min(limit or gw.settings.list_default_limit, gw.settings.list_max_limit)
    return JSONResponse(gw.list_tasks(namespace, filters, size, continue_))


@router.get("/tasks:watch", response_class=StreamingResponse, summary="Stream changes of the matching Tasks (server-sent events)",
            responses={**SSE_RESPONSE, **errors(422, 429)})
async def watch_tasks(
    namespace: Namespace,
    type: TypeFilter = None,
    queue: QueueFilter = None,
    phase: PhaseFilter = None,
    label_selector: SelectorFilter = None,
    user: User = Depends(Allow("watch", named=False)),
    gw: Gateway = Depends(gateway),
) -> StreamingResponse:
    matches = ListFilters(type, queue, phase.value if phase else None, label_selector).predicate()
    slot = gw.streams.acquire(user.username)  # last: nothing after it raises, so the slot always reaches `holding`
    events = streams.list_events(gw.tasks, namespace, matches, keepalive=gw.settings.sse_keepalive_seconds,
                                 max_seconds=gw.settings.sse_max_seconds, metrics=gw.metrics)
    return StreamingResponse(streams.holding(slot, events), media_type=streams.MEDIA_TYPE, headers=streams.HEADERS,
                             background=BackgroundTask(slot))  # also releases if the body never started


@router.get("/tasks/{name}:watch", response_class=StreamingResponse,
            summary="Stream one Task's changes until it finishes (server-sent events)", responses={**SSE_RESPONSE, **errors(404, 429)})
async def watch_task(
    namespace: Namespace,
    name: Name,
    user: User = Depends(Allow("watch")),
    gw: Gateway = Depends(gateway),
) -> StreamingResponse:
    first = await gw.read(gw.tasks, namespace, name, "Task")
    slot = gw.streams.acquire(user.username)
    events = streams.task_events(gw.tasks, namespace, name, first, keepalive=gw.settings.sse_keepalive_seconds,
                                 max_seconds=gw.settings.sse_max_seconds, metrics=gw.metrics)
    return StreamingResponse(streams.holding(slot, events), media_type=streams.MEDIA_TYPE, headers=streams.HEADERS,
                             background=BackgroundTask(slot))


@router.post("/tasks/{name}:cancel", status_code=202, response_model=TaskView, summary="Request cancellation (the Task record stays)",
             responses=errors(404, 409))
async def cancel_task(
    request: Request,
    namespace: Namespace,
    name: Name,
    user: User = Depends(Allow("patch")),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    return JSONResponse(task_view(await gw.cancel(namespace, name)), status_code=202)


@router.post("/tasks/{name}:retry", status_code=202, response_model=TaskView,
             summary="Run a Failed or Cancelled Task again (spec.rerun + 1)", responses=errors(404, 409, 422))
async def retry_task(
    namespace: Namespace,
    name: Name,
    body: Annotated[RetryRequest | None, Body()] = None,
    user: User = Depends(Allow("patch")),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    task = await gw.retry(namespace, name, body.resource_version if body else None)
    return JSONResponse(task_view(task), status_code=202)


@router.get("/tasks/{name}/log", response_class=StreamingResponse, summary="The handler's log (latest pod of the current run)",
            responses={200: {"description": "The log as text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                       **errors(404, 502, 503)})
async def task_log(
    request: Request,
    namespace: Namespace,
    name: Name,
    follow: Annotated[bool, Query(description="Keep streaming as the handler writes.")] = False,
    tail_lines: Annotated[int | None, Query(alias="tailLines", ge=0, le=100_000)] = None,
    limit_bytes: Annotated[int | None, Query(alias="limitBytes", ge=1, le=100 * 1024 * 1024)] = None,
    timestamps: bool = False,
    previous: Annotated[bool, Query(description="The previous container of the pod (after a restart).")] = False,
    run: Annotated[int | None, Query(ge=0, le=1000, description="Which run (default the current one).")] = None,
    user: User = Depends(Allow("get")),
    gw: Gateway = Depends(gateway),
) -> StreamingResponse:
    await authorize(request, user, Action("get", "pods", namespace, None, "", "log"))
    task = await gw.read(gw.tasks, namespace, name, "Task")
    wanted = run if run is not None else int((task.get("spec") or {}).get("rerun", 0) or 0)
    source = request.app.state.logs
    pods = await source.pods(namespace, task, wanted)
    if not pods:
        phase = (task.get("status") or {}).get("phase") or "Pending"
        raise GatewayError(404, f"Task {name!r} has no pod for run {wanted} (phase {phase}): it has not started, "
                           "or its Job was deleted (ttlSecondsAfterFinished)", reason="NoPod")
    params: dict[str, Any] = {"follow": str(follow).lower(), "timestamps": str(timestamps).lower(), "previous": str(previous).lower()}
    if tail_lines is not None:
        params["tailLines"] = tail_lines
    if limit_bytes is not None:
        params["limitBytes"] = limit_bytes
    body = await source.open(namespace, pods[-1], params)
    return StreamingResponse(body, media_type="text/plain; charset=utf-8",
                             headers={"X-Kubetask-Pod": pods[-1]["metadata"]["name"], "Cache-Control": "no-cache"})


@router.get("/tasks/{name}", response_model=TaskView, summary="Get one Task", responses=errors(404))
async def get_task(
    namespace: Namespace,
    name: Name,
    user: User = Depends(Allow("get")),
    gw: Gateway = Depends(gateway),
) -> JSONResponse:
    return JSONResponse(task_view(await gw.read(gw.tasks, namespace, name, "Task")))
