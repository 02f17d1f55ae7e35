"""Gateway settings: one class, every attribute documented, read from KUBETASK_GATEWAY_* variables.

Lists are JSON, as for the operator: KUBETASK_GATEWAY_NAMESPACES='["team-a","team-b"]'.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETASK_GATEWAY_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address to listen on. Use 0.0.0.0 in a pod.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces the gateway serves (one watch each); empty means all of them (one cluster-wide watch).",
    )
    kubeconfig: str | None = Field(default=None, description="Kubeconfig of the gateway's own identity (a path, or a list of paths "
                                   "merged as kubectl merges them); default $KUBECONFIG, else in-cluster, else ~/.kube/config.")
    kube_context: str | None = Field(default=None, description="Context of that kubeconfig to use; unset means its current context.")
    dev_no_auth: bool = Field(
        default=False,
        description="Development only: skip TokenReview/SubjectAccessReview and allow everything. "
        "Refused unless host is a loopback address; logged loudly at start.",
    )
    auth_cache_seconds: float = Field(default=10.0, ge=0, le=300, description="How long TokenReview and SubjectAccessReview answers are reused.")
    auth_cache_size: int = Field(default=10_000, ge=1, description="Most cached auth answers kept (least recently used go first).")
    token_audiences: list[str] = Field(
        default_factory=list,
        description="TokenReview spec.audiences: tokens must be issued for one of these (empty: the API server's own audiences).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=3 * 1024 * 1024, description="Largest request body; bigger ones get 413 before parsing.")
    default_queue: str = Field(default="default", pattern=DNS_LABEL, description="Queue of a Task whose spec and TaskType name none (keep equal to the operator's).")
    require_queue: bool = Field(default=True, description="Reject (422) a submission whose effective TaskQueue does not exist, instead of letting it wait.")
    list_default_limit: int = Field(default=100, ge=1, le=1000, description="Page size of list when the caller gives no limit.")
    list_max_limit: int = Field(default=500, ge=1, le=5000, description="Largest page size a caller may ask for.")
    batch_max_items: int = Field(default=100, ge=1, le=1000, description="Most Tasks in one batch submission.")
    rerun_max_items: int = Field(default=100, ge=1, le=1000, description="Most dead-lettered Tasks one POST .../deadletter:rerun re-runs.")
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, le=300, description="Seconds between keep-alive comments on idle event streams.")
    sse_max_seconds: int = Field(default=3600, ge=1, description="Longest an event stream stays open; clients reconnect after it.")
    sse_max_streams_per_identity: int = Field(default=20, ge=1, description="Most event streams (both :watch kinds together) one "
                                              "identity (user name) may hold open; more get 429 with Retry-After.")
    sse_max_streams: int = Field(default=500, ge=1, description="Most event streams open on this gateway process in all; more get 429.")
    sse_retry_after_seconds: int = Field(default=5, ge=1, le=300, description="Retry-After of a 429 for too many event streams.")
    watch_timeout_seconds: int = Field(default=300, ge=10, le=3600, description="timeoutSeconds of each cache watch request (it is then resumed).")
    ready_check_seconds: float = Field(default=2.0, ge=0, description="How long a successful API-server reachability check counts for /readyz.")
    root_path: str = Field(default="", description="URL prefix when served behind a proxy that strips it.")
    log_level: str = Field(default="INFO", description="Log level.")
    access_log: bool = Field(default=False, description="uvicorn access log (one line per request).")

    @model_validator(mode="after")
    def _dev_mode_only_on_loopback(self) -> GatewaySettings:
        self.check_dev_mode()
        return self

    def check_dev_mode(self) -> None:
        if self.dev_no_auth and not is_loopback(self.host):
            raise ValueError(
                f"KUBETASK_GATEWAY_DEV_NO_AUTH=true turns authentication off; it is only allowed when the gateway listens "
                f"on a loopback address (127.0.0.1, ::1, localhost), not on {self.host!r}"
            )
