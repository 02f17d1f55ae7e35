"""Who is calling, and may they? The cluster decides: TokenReview, then SubjectAccessReview.

The gateway never interprets tokens or RBAC itself. A caller's bearer token goes to the API server
(TokenReview) which names the user; each action is then put to the API server as a
SubjectAccessReview for that user (namespace, group, resource, verb, name), so cluster RBAC (and
any other authorizer the cluster runs) decides. Answers are reused for a few seconds, keyed by a
hash of the token and the exact attributes, so a revoked permission takes effect within
`auth_cache_seconds`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from kubetask.api.errors import GatewayError, from_api_error
from kubetask.api.metrics import GatewayMetrics
from kubetask.kube import ApiError
from kubetask.resources.models import GROUP

log = logging.getLogger("kubetask.gateway.auth")
TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
DEV_USER = "kubetask-gateway:dev-no-auth"
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class User:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)
    token_hash: str = ""


@dataclass(frozen=True)
class Action:
    """resourceAttributes of a SubjectAccessReview."""

    verb: str
    resource: str
    namespace: str
    name: str | None = None
    group: str = GROUP
    subresource: str | None = None

    def describe(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        group = f".{self.group}" if self.group else ""
        target = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {what}{group}{target} in namespace {self.namespace}"


class TTLCache(Generic[K, V]):
    """A small LRU map whose entries expire."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


class Reviewer(Protocol):
    async def create(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]: ...


class Authorizer(Protocol):
    dev_mode: bool

    async def authenticate(self, authorization: str | None) -> User: ...

    async def authorize(self, user: User, action: Action) -> None: ...


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, headers={"WWW-Authenticate": 'Bearer realm="kubetask"'})


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthorized("no credentials: send 'Authorization: Bearer <token>' with a Kubernetes token (e.g. kubectl create token)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    if len(token) > 16384 or any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise unauthorized("the bearer token is malformed")
    return token


class KubeAuthorizer:
    """TokenReview + SubjectAccessReview against the API server, with a short-lived cache."""

    dev_mode = False

    def __init__(self, kube: Reviewer, ttl: float = 10.0, size: int = 10_000, audiences: list[str] | None = None,
                 metrics: GatewayMetrics | None = None) -> None:
        self.kube = kube
        self.audiences = list(audiences or [])
        self.metrics = metrics
        self._users: TTLCache[str, User | str] = TTLCache(ttl, size)  # token hash → user, or why it was refused
        self._decisions: TTLCache[tuple[str, Action], str] = TTLCache(ttl, size)  # → "" allowed, else why not

    def _count(self, kind: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.reviews.labels(kind, outcome).inc()

    async def authenticate(self, authorization: str | None) -> User:
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._users.get(digest)
        if cached is not None:
            self._count("tokenreview", "cache")
        else:
            cached = await self._review_token(token, digest)
            self._users.put(digest, cached)
        if isinstance(cached, str):
            raise unauthorized(cached)
        return cached

    async def _review_token(self, token: str, digest: str) -> User | str:
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        try:
            review = await self.kube.create(TOKENREVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
        except ApiError as error:
            self._count("tokenreview", "error")
            raise from_api_error(error, "TokenReview failed") from error
        status = review.get("status") or {}
        if not status.get("authenticated"):
            self._count("tokenreview", "rejected")
            reason = status.get("error") or "the token is invalid or expired"
            return f"the token was not accepted by the cluster: {reason}"
        self._count("tokenreview", "accepted")
        user = status.get("user") or {}
        return User(username=str(user.get("username", "")), uid=str(user.get("uid", "")),
                    groups=tuple(user.get("groups") or ()), extra={k: list(v) for k, v in (user.get("extra") or {}).items()},
                    token_hash=digest)

    async def authorize(self, user: User, action: Action) -> None:
        key = (user.token_hash or user.username, action)
        denial = self._decisions.get(key)
        if denial is not None:
            self._count("subjectaccessreview", "cache")
        else:
            denial = await self._review_access(user, action)
            self._decisions.put(key, denial)
        if denial:
            raise GatewayError(403, denial)

    async def _review_access(self, user: User, action: Action) -> str:
        """The empty string when allowed, else the reason for the 403."""
        attributes: dict[str, Any] = {"namespace": action.namespace, "verb": action.verb, "group": action.group,
                                      "resource": action.resource}
        if action.name:
            attributes["name"] = action.name
        if action.subresource:
            attributes["subresource"] = action.subresource
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user.username, "uid": user.uid, "groups": list(user.groups), "extra": user.extra,
                         "resourceAttributes": attributes}}
        try:
            review = await self.kube.create(SUBJECTACCESSREVIEWS, body)
        except ApiError as error:
            self._count("subjectaccessreview", "error")
            raise from_api_error(error, "SubjectAccessReview failed") from error
        status = review.get("status") or {}
        if status.get("evaluationError"):
            log.warning("SubjectAccessReview for %s (%s): evaluation error: %s", user.username, action.describe(), status["evaluationError"])
        if status.get("allowed") and not status.get("denied"):
            self._count("subjectaccessreview", "allowed")
            return ""
        self._count("subjectaccessreview", "denied")
        why = f": {status['reason']}" if status.get("reason") else ""
        return f"user {user.username!r} may not {action.describe()}{why}"


class DevAuthorizer:
    """Development mode: everyone is DEV_USER and everything is allowed (loopback only, see settings)."""

    dev_mode = True

    async def authenticate(self, authorization: str | None) -> User:
        return User(username=DEV_USER, groups=("system:authenticated",))

    async def authorize(self, user: User, action: Action) -> None:
        return None
