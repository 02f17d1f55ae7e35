"""Operator settings: one class, every attribute documented, read from KUBETASK_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETASK_", extra="ignore")

    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty means the whole cluster.")
    default_queue: str = Field("default", description="Queue of a Task whose spec and TaskType name none.")
    metrics_port: int = Field(8080, description="Port of /metrics (Prometheus).")
    health_port: int = Field(8081, description="Port of /healthz (liveness: the operator's watches and handlers are alive).")
    metrics_host: str = Field("0.0.0.0", description="Address the metrics and health server binds to.")
    pod_annotation_prefixes: list[str] = Field(
        default_factory=list,
        description="Task annotations whose key starts with one of these prefixes are copied onto the handler pod. "
        "Empty by default; the local control plane sets sim.kubetask.io/ so tests can drive simulated pods.",
    )
    termination_grace_seconds: int = Field(30, description="terminationGracePeriodSeconds of handler pods: SIGTERM, then SIGKILL after this.")
    queue_status_interval: float = Field(2.0, description="Seconds between TaskQueue status updates (counts are batched to save writes).")
    log_format: str = Field("json", description="json (structured, one object per line) or text.")
    log_level: str = Field("INFO", description="Log level.")
