"""A fake gateway for the CLI's unit tests: an httpx.MockTransport that records requests and
answers from a table of canned responses (JSON, server-sent events, text or errors)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from kubetask.cli.main import run

NS = "team-a"
BASE = f"/api/v1/namespaces/{NS}"
ENV = {"KUBETASK_GATEWAY_URL": "http://gw.test", "KUBETASK_TOKEN": "secret-token", "KUBETASK_NAMESPACE": NS,
       "KUBETASK_CONFIG": "/nonexistent/kubetask.yaml", "HOME": "/nonexistent"}

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def task(name: str = "sim-abc", phase: str = "Pending", finished: bool | None = None, **extra: Any) -> dict[str, Any]:
    done = phase in ("Succeeded", "Failed", "Cancelled") if finished is None else finished
    return {"name": name, "namespace": NS, "uid": "u-1", "resourceVersion": "10", "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {}, "annotations": {}, "spec": {"type": "sim", "parameters": {"n": 1}}, "phase": phase,
            "finished": done, "conditions": [], "queue": "default", "run": 0, "attempts": 0, "progress": None,
            "result": None, "lastFailure": None, "history": [], **extra}


def error(status: int, reason: str, message: str, details: list[tuple[str, str]] = (), **extra: Any) -> httpx.Response:  # type: ignore[assignment]
    body = {"error": {"status": status, "reason": reason, "message": message,
                      "details": [{"field": f, "message": m} for f, m in details]}, **extra}
    return httpx.Response(status, json=body)


def sse(*events: tuple[str, dict[str, Any]]) -> httpx.Response:
    text = "".join(f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n" + ": keepalive\n\n" for i, (kind, data) in enumerate(events))
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class FakeGateway:
    routes: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: Answer) -> FakeGateway:
        """Answers, in order, for method + path (below /api/v1/namespaces/team-a unless it starts with /); the last repeats."""
        full = path if path.startswith("/") else f"{BASE}/{path}"
        self.routes.setdefault((method, full), []).extend(answers)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        answers = self.routes.get(key)
        if not answers:
            return error(404, "NotFound", f"no fake route for {key}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else answer

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def bodies(self, method: str = "POST") -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests if r.method == method]


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(fake: FakeGateway | None, *argv: str, env: dict[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env={**ENV, **(env or {})}, stdout=out, stderr=err,
               transport=fake.transport() if fake else None, sleep=lambda _: None)
    return Result(code, out.getvalue(), err.getvalue())
