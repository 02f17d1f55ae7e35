"""How a Task becomes a Job: `build_job`, a pure function of the Task and its effective spec."""

from __future__ import annotations

import json
from typing import Any

from kubetask.operator import naming
from kubetask.operator.resolve import EffectiveSpec
from kubetask.resources.models import API_VERSION

PARAMETERS_DIR = "/etc/kubetask"
PARAMETERS_FILE = f"{PARAMETERS_DIR}/parameters.json"
# A fan-out's items: one ConfigMap per run, mounted by every pod of the Indexed Job, which picks
# items[JOB_COMPLETION_INDEX]. Not a pod annotation like the parameters: each pod would carry every
# item, N pods × all items in etcd and in the pod LIST read at the end.
ITEMS_KEY = "items.json"
ITEMS_FILE = f"{PARAMETERS_DIR}/{ITEMS_KEY}"
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
    fanout = spec.items is not None
    if fanout:
        # JOB_COMPLETION_INDEX, the pod's item, is set by the Job controller itself.
        env += [{"name": "KUBETASK_ITEMS_FILE", "value": ITEMS_FILE},
                {"name": "KUBETASK_ITEM_COUNT", "value": str(len(spec.items or ()))}]

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
        "volumes": [_parameters_volume(naming.job_name(name, uid, run) if fanout else None),
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
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
        "podFailurePolicy": {"rules": _pod_failure_rules(spec.non_retryable_exit_codes, fanout)},
        "template": {
            "metadata": {"labels": labels,
                         "annotations": {**(pod_annotations or {}), naming.ANNOTATION_PARAMETERS: parameters_json}},
            "spec": pod_spec,
        },
    }
    if fanout:
        # One index per item. Retries count per item (backoffLimitPerIndex); backoffLimit is left
        # unset, which the API server then defaults to "unlimited", so failures of some items never
        # fail the others. maxFailedIndexes unset: every item runs, and the Job fails at the end
        # (FailedIndexes) if any failed.
        del job_spec["backoffLimit"]
        job_spec.update({"completionMode": "Indexed", "completions": len(spec.items or ()),
                         "parallelism": spec.parallelism, "backoffLimitPerIndex": spec.retries})
        if spec.max_failed_items is not None:
            job_spec["maxFailedIndexes"] = spec.max_failed_items
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


def items_configmap(task: dict[str, Any], spec: EffectiveSpec, run: int) -> dict[str, Any]:
    """The ConfigMap holding a fan-out run's items, named like its Job, created before it. Owned
    by the Task, so it goes with the Task; immutable, so kubelets need not watch it."""
    meta = task["metadata"]
    name, uid = meta["name"], meta["uid"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.job_name(name, uid, run),
            "namespace": meta["namespace"],
            "labels": naming.child_labels(name, uid, spec.type, spec.queue, run),
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": "Task", "name": name, "uid": uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "immutable": True,
        "data": {ITEMS_KEY: json.dumps(spec.items, separators=(",", ":"), ensure_ascii=False)},
    }


def _parameters_volume(items_configmap_name: str | None) -> dict[str, Any]:
    """/etc/kubetask: parameters.json from the pod's annotation, and for a fan-out items.json
    from its ConfigMap (one projected volume, so both sit in the same folder)."""
    parameters = {"items": [{
        "path": "parameters.json",
        "fieldRef": {"fieldPath": f"metadata.annotations['{naming.ANNOTATION_PARAMETERS}']"},
    }]}
    if items_configmap_name is None:
        return {"name": "parameters", "downwardAPI": parameters}
    return {"name": "parameters", "projected": {"sources": [
        {"downwardAPI": parameters},
        {"configMap": {"name": items_configmap_name, "items": [{"key": ITEMS_KEY, "path": ITEMS_KEY}]}},
    ]}}


def _pod_failure_rules(non_retryable: tuple[int, ...], fanout: bool = False) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if non_retryable:
        # In a fan-out a non-retryable exit code ends only its item (FailIndex): FailJob would
        # stop every other item too.
        rules.append({"action": "FailIndex" if fanout else "FailJob", "onExitCodes": {
            "containerName": CONTAINER_NAME, "operator": "In", "values": sorted(set(non_retryable))}})
    # Evictions, preemptions and node drains are not the handler's fault: retry without counting.
    rules.append({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]})
    return rules
