"""Operator settings: one class, every attribute documented, read from KUBETASK_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETASK_", extra="ignore")

    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty means the whole cluster.")
    kube_context: str | None = Field(
        None, description="Kubeconfig context to use; unset means the current context. The kubeconfig itself is "
        "$KUBECONFIG (a list of files is merged as kubectl merges it), else the in-cluster service account, else ~/.kube/config.")
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
    resync_seconds: float = Field(
        180.0, description="Seconds between resyncs: every unfinished Task and every queue with waiting Tasks is reconciled "
        "again, whatever the events said (the safety net under the retried work queue).")
    retry_base_delay: float = Field(0.05, description="First retry delay in seconds of a failed reconcile; it doubles per failure of the same key.")
    retry_max_delay: float = Field(300.0, description="The most a failed reconcile waits before its next try, in seconds.")
    pending_pod_check_seconds: float = Field(
        10.0, description="Seconds between checks of why Jobs without a ready pod wait (Unschedulable): one LIST of "
        "Pending pods per namespace that has such a Job. The operator does not watch pods.")
    status_settle_seconds: float = Field(
        0.0, ge=0, description="A new Job's first moments are not written as status: the Task says Running/PodPending "
        "only once its Job has existed this long with no pod running yet. A pod that starts (or a run that ends) sooner is "
        "written as that directly, one status write fewer per short Task. Off (0) by default (it saved little in the "
        "benches). Until status.jobName is written, the handler-progress admission policy (policies/) refuses a handler's "
        "progress report (it checks the pod against status.jobName); the SDK sends such a report again later.")
    workers: int = Field(16, description="Reconciles that run at once (each on a different Task or queue).")
    api_requests_in_flight: int = Field(
        24, ge=1, description="API requests the reconciles keep on the wire at once (Job creates, status writes, reads); "
        "the rest wait their turn in the operator. Events, informers and webhook deliveries have connections of their own. "
        "Fairness between clients is the API server's (API Priority and Fairness: the operator retries a 429). "
        "24, not 8 as before 2026-12-04: with 8, a burst's Job creates waited behind status writes, each a few tens of "
        "milliseconds on a busy API server (docs/benchmarks.md).")
    log_format: str = Field("json", description="json (structured, one object per line) or text.")
    log_level: str = Field("INFO", description="Log level.")
    leader_election: bool = Field(
        True, description="Active/standby: act only while holding the leader Lease (coordination.k8s.io/v1); "
        "off runs every process as the leader, as before.")
    leader_lease_name: str = Field("kubetask-operator", description="Name of the leader Lease (one per operator deployment).")
    leader_lease_namespace: str | None = Field(
        None, description="Namespace of the leader Lease; unset means the pod's own namespace (the service account's "
        "namespace file), else default.")
    leader_lease_seconds: int = Field(
        15, ge=1, description="leaseDurationSeconds: how long after its last renewal a silent leader's Lease may be taken over.")
    leader_renew_deadline_seconds: float = Field(
        10.0, gt=0, description="The leader exits when no renewal has succeeded for this long (less than the lease duration).")
    leader_retry_seconds: float = Field(
        2.0, gt=0, description="Seconds between renewals by the leader, and between tries by a standby.")
    retention_seconds: int = Field(
        604800, description="Retention of a finished Task that sets none itself and whose TaskType and TaskQueue set none: "
        "it is deleted (its Job and pods with it) this many seconds after it finished. 7 days, not forever: every Task "
        "record stays in etcd and in every watcher's memory (the operator's, the gateway's cache), so keeping them all "
        "grows without bound at scale, while a week still leaves time to read a result or debug a failure. "
        "A negative value keeps such Tasks forever.")
    retention_check_seconds: float = Field(
        30.0, gt=0, description="Seconds between retention sweeps at most (sooner when the next Task comes due sooner). "
        "A sweep reads the Task index, not the API server.")
    retention_deletes_per_second: float = Field(
        10.0, gt=0, description="Pace of retention's writes (Task deletes, and the Retained status notes of GitOps-managed "
        "Tasks): a backlog of expired Tasks, e.g. right after an upgrade, is deleted in batches at this rate instead of "
        "flooding the API server.")
    webhook_workers: int = Field(
        8, ge=1, description="Webhook deliveries sent at once. Deliveries have their own queue, workers, HTTP client and API "
        "connection, so a slow receiver never holds up reconciliation.")
    webhook_retry_base_seconds: float = Field(
        10.0, gt=0, description="Wait after a webhook delivery's first failed attempt; it doubles per attempt (with jitter) "
        "up to webhook_retry_max_seconds, until the TaskWebhook's maxAttempts are used up.")
    webhook_retry_max_seconds: float = Field(3600.0, gt=0, description="The longest wait between two attempts of one webhook delivery.")
    webhook_secret_check_seconds: float = Field(
        60.0, gt=0, description="Seconds between checks of each TaskWebhook's Secret (its Ready condition). Secrets are read "
        "by name (get), never listed or watched, so a Secret created later is noticed within this interval.")
