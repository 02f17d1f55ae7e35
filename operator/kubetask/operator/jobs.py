"""How a Task becomes a Job: `build_job`, a pure function of the Task and its effective spec."""

from __future__ import annotations

import json
from typing import Any

from kubetask.operator import naming
from kubetask.operator.resolve import EffectiveSpec
from kubetask.resources.models import API_VERSION

PARAMETERS_DIR = "/etc/kubetask"
PARAMETERS_FILE = f"{PARAMETERS_DIR}/parameters.json"
CONTAINER_NAME = "handler"
HANDLER_UID = 65532  # the distroless "nonroot" user; images should use the same numeric USER

RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def build_job(task: dict[str, Any], spec: EffectiveSpec, run: int, *, grace_seconds: int = 30,
              pod_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Job for one run of a Task. Pods meet Pod Security "restricted"; no service-account
    token is mounted unless the TaskType asks for progress reports."""
    meta = task["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    tasktype = spec.tasktype
    labels = naming.child_labels(name, uid, spec.type, spec.queue, run)
    parameters_json = json.dumps(spec.parameters, separators=(",", ":"), ensure_ascii=False)

    env = [{"name": e["name"], "value": e.get("value", "")} for e in tasktype.get("env") or []]
    env += [
        {"name": "KUBETASK_TASK_NAME", "value": name},
        {"name": "KUBETASK_TASK_NAMESPACE", "value": namespace},
        {"name": "KUBETASK_TASK_TYPE", "value": spec.type},
        {"name": "KUBETASK_RUN", "value": str(run)},
        {"name": "KUBETASK_PARAMETERS", "value": parameters_json},
        {"name": "KUBETASK_PARAMETERS_FILE", "value": PARAMETERS_FILE},
    ]

    limits: dict[str, str] = {}
    if spec.cpu:
        limits["cpu"] = spec.cpu
    if spec.memory:
        limits["memory"] = spec.memory
    if spec.gpu:
        limits[tasktype.get("gpuResourceName") or "nvidia.com/gpu"] = str(spec.gpu)

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": tasktype["image"],
        "env": env,
        "resources": {"limits": limits, "requests": dict(limits)} if limits else {},
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        # A handler that dies without writing a result still explains itself: the kubelet puts
        # the tail of its log into the termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "parameters", "mountPath": PARAMETERS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if tasktype.get("command"):
        container["command"] = list(tasktype["command"])
    if tasktype.get("args"):
        container["args"] = list(tasktype["args"])

    report_progress = bool(tasktype.get("reportProgress"))
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # the Job controller owns retries (and podFailurePolicy needs Never)
        "automountServiceAccountToken": report_progress,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": HANDLER_UID, "runAsGroup": HANDLER_UID, "fsGroup": HANDLER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "parameters", "downwardAPI": {"items": [{
                "path": "parameters.json",
                "fieldRef": {"fieldPath": f"metadata.annotations['{naming.ANNOTATION_PARAMETERS}']"},
            }]}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if tasktype.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = tasktype["serviceAccountName"]
    if tasktype.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(tasktype["nodeSelector"])
    tolerations = [dict(t) for t in tasktype.get("tolerations") or []]
    if spec.gpu:
        # GPU nodes are commonly tainted with their resource name; a GPU Task tolerates that.
        tolerations.append({"key": tasktype.get("gpuResourceName") or "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if tasktype.get("priorityClassName"):
        pod_spec["priorityClassName"] = tasktype["priorityClassName"]

    job_spec: dict[str, Any] = {
        "backoffLimit": spec.retries,
        "completions": 1,
        "parallelism": 1,
        "podFailurePolicy": {"rules": _pod_failure_rules(spec.non_retryable_exit_codes)},
        "template": {
            "metadata": {"labels": labels,
                         "annotations": {**(pod_annotations or {}), naming.ANNOTATION_PARAMETERS: parameters_json}},
            "spec": pod_spec,
        },
    }
    if spec.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.timeout_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": naming.job_name(name, uid, run),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": "Task", "name": name, "uid": uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": job_spec,
    }


def _pod_failure_rules(non_retryable: tuple[int, ...]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if non_retryable:
        rules.append({"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER_NAME, "operator": "In", "values": sorted(set(non_retryable))}})
    # Evictions, preemptions and node drains are not the handler's fault: retry without counting.
    rules.append({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]})
    return rules
