"""build_job: Task + TaskType → Job, without a cluster."""

from __future__ import annotations

import json
from typing import Any

from kubetask.operator import naming
from kubetask.operator.jobs import build_job
from kubetask.operator.resolve import resolve

TASK = {"metadata": {"name": "hello", "namespace": "ns", "uid": "1234-abcd", "annotations": {}},
        "spec": {"type": "echo", "parameters": {"text": "hi; rm -rf /"}}}
TASKTYPE: dict[str, Any] = {
    "image": "ghcr.io/kubetask/handler-echo:0.1.0", "command": ["python", "-m", "kubetask_sdk"],
    "env": [{"name": "MODE", "value": "fast"}],
    "defaults": {"queue": "batch", "retries": 2, "timeoutSeconds": 60, "resources": {"cpu": "500m", "memory": "256Mi"},
                 "nonRetryableExitCodes": [65], "ttlSecondsAfterFinished": 300},
}


def job_for(task_spec: dict[str, Any] | None = None, tasktype: dict[str, Any] | None = None, run: int = 0) -> dict[str, Any]:
    task = {**TASK, "spec": {**TASK["spec"], **(task_spec or {})}}
    effective, problems = resolve(task["spec"], tasktype or TASKTYPE, "default")
    assert effective is not None, problems
    return build_job(task, effective, run)


def test_defaults_become_job_fields() -> None:
    job = job_for()
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 60
    assert spec["ttlSecondsAfterFinished"] == 300
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"containerName": "handler", "operator": "In", "values": [65]}}
    assert rules[-1]["action"] == "Ignore" and rules[-1]["onPodConditions"][0]["type"] == "DisruptionTarget"
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "500m", "memory": "256Mi"}}
    assert job["metadata"]["labels"][naming.LABEL_QUEUE] == "batch"


def test_task_fields_override_defaults() -> None:
    job = job_for({"retries": 0, "timeoutSeconds": 5, "resources": {"cpu": "1"}, "queue": "fast", "nonRetryableExitCodes": [3, 4]})
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 5
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3, 4]
    assert job["metadata"]["labels"][naming.LABEL_QUEUE] == "fast"


def test_parameters_reach_the_container_as_data_never_through_a_shell() -> None:
    job = job_for()
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["KUBETASK_PARAMETERS"]) == {"text": "hi; rm -rf /"}
    assert json.loads(pod["metadata"]["annotations"][naming.ANNOTATION_PARAMETERS]) == {"text": "hi; rm -rf /"}
    assert env["KUBETASK_PARAMETERS_FILE"] == "/etc/kubetask/parameters.json"
    assert env["MODE"] == "fast" and env["KUBETASK_TASK_NAME"] == "hello" and env["KUBETASK_RUN"] == "0"
    assert container["command"] == ["python", "-m", "kubetask_sdk"]  # from the TaskType only
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "parameters")
    assert volume["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.annotations['kubetask.io/parameters']"


def test_pods_meet_pod_security_restricted() -> None:
    pod = job_for()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in pod["containers"][0]["volumeMounts"])
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_progress_reporting_types_get_their_service_account_token() -> None:
    pod = job_for(tasktype={**TASKTYPE, "serviceAccountName": "kubetask-handler", "reportProgress": True})["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "kubetask-handler"


def test_gpu_uses_the_types_resource_name_and_tolerates_its_taint() -> None:
    job = job_for({"resources": {"gpu": 2}}, {**TASKTYPE, "gpuResourceName": "amd.com/gpu", "nodeSelector": {"pool": "gpu"}})
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"pool": "gpu"}


def test_owner_reference_and_deterministic_names() -> None:
    job = job_for(run=3)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == ("Task", "1234-abcd", True, True)
    assert job["metadata"]["name"] == naming.job_name("hello", "1234-abcd", 3) == job_for(run=3)["metadata"]["name"]
    assert job["metadata"]["name"] != naming.job_name("hello", "other-uid", 3)
    assert job["metadata"]["name"].endswith("-r3")


def test_job_names_fit_the_label_limit() -> None:
    name = naming.job_name("x" * 63, "uid", 1000)
    assert len(name) <= 63 and name.endswith("-r1000")
