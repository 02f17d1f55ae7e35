"""FastAPI dependencies: the gateway state, and authentication + authorization per endpoint."""

from __future__ import annotations

import re

from typing import Annotated

from fastapi import Path, Request

from kubetask.api.auth import Action, User
from kubetask.api.errors import GatewayError
from kubetask.api.schemas import NAME_PATTERN
from kubetask.api.service import Gateway
from kubetask.resources.models import DNS_LABEL, GROUP, MAX_NAME

Namespace = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL, description="The namespace (a DNS label).")]
Name = Annotated[str, Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="The object's name.")]


def gateway(request: Request) -> Gateway:
    state: Gateway = request.app.state.gateway
    return state


def _check(field: str, value: str, pattern: str, max_length: int) -> None:
    if not value or len(value) > max_length or not re.fullmatch(pattern, value):
        raise GatewayError(422, f"{field} {value[:100]!r} is not a valid Kubernetes name", details=[(field, f"must match {pattern} and be at most {max_length} characters")])


class Allow:
    """Authenticate the caller, then ask the cluster whether they may do `verb` on `resource` here.

    Order: 401 (who are you?) before 422 (malformed namespace or name) before 404 (namespace not
    served) before 403 (not allowed)."""

    def __init__(self, verb: str, resource: str = "tasks", *, group: str = GROUP, subresource: str | None = None,
                 named: bool = True) -> None:
        self.verb, self.resource, self.group, self.subresource, self.named = verb, resource, group, subresource, named

    async def __call__(self, request: Request) -> User:
        gw = gateway(request)
        user = await gw.auth.authenticate(request.headers.get("authorization"))
        namespace = str(request.path_params.get("namespace", ""))
        _check("namespace", namespace, DNS_LABEL, 63)
        name = str(request.path_params["name"]) if self.named and "name" in request.path_params else None
        if name is not None:
            _check("name", name, NAME_PATTERN, MAX_NAME)
        if not gw.serves(namespace):
            raise GatewayError(404, f"namespace {namespace} is not served by this gateway")
        await gw.auth.authorize(user, Action(self.verb, self.resource, namespace, name, self.group, self.subresource))
        request.state.user = user
        return user


async def authorize(request: Request, user: User, action: Action) -> None:
    """An extra check inside an endpoint (e.g. pods/log besides tasks)."""
    await gateway(request).auth.authorize(user, action)
