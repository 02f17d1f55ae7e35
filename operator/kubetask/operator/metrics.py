"""Prometheus metrics of the operator (served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS = Gauge("kubetask_tasks", "Tasks by phase, type and queue.", ["phase", "type", "queue"])
QUEUE_PENDING = Gauge("kubetask_queue_pending", "Tasks waiting for admission.", ["namespace", "queue"])
QUEUE_RUNNING = Gauge("kubetask_queue_running", "Tasks with an unfinished Job.", ["namespace", "queue"])
QUEUED_SECONDS = Histogram("kubetask_task_queued_seconds", "Time from Task creation to its Job starting.",
                           ["type", "queue"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400))
RUN_SECONDS = Histogram("kubetask_task_run_seconds", "Time from a Task's start to its terminal phase.",
                        ["type", "queue", "phase"], buckets=(1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400))
RETRIES = Counter("kubetask_task_retries_total", "Pods started again after a failure.", ["type", "queue"])
CANCELLATIONS = Counter("kubetask_task_cancellations_total", "Tasks cancelled.", ["type", "queue"])
FAILURES = Counter("kubetask_task_failures_total", "Tasks failed, by reason.", ["type", "queue", "reason"])
RECONCILE_ERRORS = Counter("kubetask_reconcile_errors_total", "Reconciles that raised (they are retried).", ["kind"])
API_WRITES = Counter("kubetask_api_writes_total", "Writes the operator sent to the API server.", ["verb", "resource"])
JOB_CREATE_FAILURES = Counter("kubetask_job_create_failures_total",
                              "Job creates the API server refused or did not answer, by kind (Quota, AdmissionDenied, "
                              "Forbidden, Throttled, ServerError, Timeout, Invalid, Other).", ["reason"])
WORK_QUEUE_DEPTH = Gauge("kubetask_work_queue_depth", "Keys (Tasks, queues) waiting for a worker.")
WORK_QUEUE_RETRIES = Gauge("kubetask_work_queue_retries", "Keys waiting for their backoff to pass before a retry.")
EVENTS = Counter("kubetask_watch_events_total", "Watch events handled, by kind of object.", ["kind"])
WATCH_RESTARTS = Counter("kubetask_watch_restarts_total", "Task and Job lists made again after a watch ended in an error or 410 Gone, "
                         "by kind and reason (gone, http_<status>, error, unexpected).", ["kind", "reason"])
RESERVATIONS = Gauge("kubetask_reservations", "Capacity reserved for Jobs being created that the Job index has not shown yet.")
SCHEDULED_RUNS = Counter("kubetask_schedule_runs_total", "Tasks created by TaskSchedules.", ["namespace", "schedule"])
SCHEDULE_MISSED = Gauge("kubetask_schedule_missed_runs", "status.missedRuns of each TaskSchedule.", ["namespace", "schedule"])
QUEUE_THROTTLED = Gauge("kubetask_queue_throttled", "Waiting Tasks held back only by the queue's rate limit.", ["namespace", "queue"])
QUEUE_DEAD_LETTER = Gauge("kubetask_queue_dead_letter", "Dead-lettered Tasks of the queue: their current run Failed (until re-run or deleted).",
                          ["namespace", "queue"])
WEBHOOK_ATTEMPTS = Counter("kubetask_webhook_attempts_total",
                           "Webhook delivery attempts, by result (delivered, http_error, redirect, timeout, connection_error, refused).",
                           ["namespace", "webhook", "result"])
WEBHOOK_DELIVERIES = Counter("kubetask_webhook_deliveries_total",
                             "Webhook deliveries that ended, by outcome: Delivered (a 2xx), Failed (maxAttempts used up), "
                             "Refused (the destination is not allowed).", ["namespace", "webhook", "outcome"])
WEBHOOK_ATTEMPT_SECONDS = Histogram("kubetask_webhook_attempt_seconds", "Duration of webhook delivery attempts (resolve, connect, send, answer).",
                                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
WEBHOOK_QUEUE_DEPTH = Gauge("kubetask_webhook_queue_depth", "Webhook deliveries (and TaskWebhook checks) waiting for a worker.")
WEBHOOK_QUEUE_RETRIES = Gauge("kubetask_webhook_queue_retries", "Webhook deliveries waiting for their next attempt's time.")
