"""The resource contract, as the real API server enforces it (what `kubectl apply` users meet).

Every invalid manifest must be rejected with a message that names the field; every rejected update
must leave the stored object exactly as it was."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubetask.kube import ApiError, KubeSync, tasks_path

API = "kubetask.io/v1alpha1"


def task(spec: Any = None, name: str = "t", **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": API, "kind": "Task", "metadata": {"name": name, **meta}}
    if spec is not None:
        body["spec"] = spec
    return body


def tasktype(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "TaskType", "metadata": {"name": "tt"}, "spec": spec}


def queue(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "TaskQueue", "metadata": {"name": "q"}, "spec": spec}


S = {"type": "echo"}
INVALID_CREATES: list[tuple[str, str, dict[str, Any], str]] = [
    ("no-spec", "tasks", task(), "spec: Required value"),
    ("no-type", "tasks", task({"parameters": {}}), "spec.type: Required value"),
    ("empty-type", "tasks", task({"type": ""}), "spec.type"),
    ("uppercase-type", "tasks", task({"type": "Echo"}), "spec.type"),
    ("long-type", "tasks", task({"type": "e" * 64}), "spec.type"),
    ("negative-retries", "tasks", task({**S, "retries": -1}), "spec.retries"),
    ("too-many-retries", "tasks", task({**S, "retries": 21}), "spec.retries"),
    ("zero-timeout", "tasks", task({**S, "timeoutSeconds": 0}), "spec.timeoutSeconds"),
    ("absurd-timeout", "tasks", task({**S, "timeoutSeconds": 10**9}), "spec.timeoutSeconds"),
    ("bad-cpu", "tasks", task({**S, "resources": {"cpu": "lots"}}), "spec.resources.cpu"),
    ("bad-memory", "tasks", task({**S, "resources": {"memory": "5 Gi"}}), "spec.resources.memory"),
    ("negative-gpu", "tasks", task({**S, "resources": {"gpu": -1}}), "spec.resources.gpu"),
    # isQuantity admits these; CEL's quantity() comparison refuses them (issue #16).
    ("negative-memory", "tasks", task({**S, "resources": {"memory": "-1Gi"}}), "spec.resources.memory: Invalid value"),
    ("negative-cpu", "tasks", task({**S, "resources": {"cpu": "-500m"}}), "spec.resources.cpu: Invalid value"),
    ("zero-cpu", "tasks", task({**S, "resources": {"cpu": "0"}}), "spec.resources.cpu: Invalid value"),
    ("zero-memory", "tasks", task({**S, "resources": {"memory": "0Mi"}}), "spec.resources.memory: Invalid value"),
    ("absurd-gpu", "tasks", task({**S, "resources": {"gpu": 1000}}), "spec.resources.gpu"),
    ("parameters-not-object", "tasks", task({**S, "parameters": "x=1"}), "spec.parameters"),
    ("too-many-parameters", "tasks", task({**S, "parameters": {f"k{i}": i for i in range(65)}}), "spec.parameters"),
    ("unknown-field", "tasks", task({**S, "retriez": 3}), 'unknown field "spec.retriez"'),
    ("priority-out-of-range", "tasks", task({**S, "priority": 5000}), "spec.priority"),
    ("exit-code-zero", "tasks", task({**S, "nonRetryableExitCodes": [0]}), "spec.nonRetryableExitCodes[0]"),
    ("too-many-exit-codes", "tasks", task({**S, "nonRetryableExitCodes": list(range(1, 18))}), "spec.nonRetryableExitCodes"),
    ("negative-ttl", "tasks", task({**S, "ttlSecondsAfterFinished": -5}), "spec.ttlSecondsAfterFinished"),
    ("name-too-long", "tasks", task(S, name="n" * 64), "metadata.name must be at most 63 characters"),
    ("bad-queue-name", "tasks", task({**S, "queue": "Q_1"}), "spec.queue"),
    ("cancel-not-bool", "tasks", task({**S, "cancel": "yes"}), "spec.cancel"),
    ("negative-rerun", "tasks", task({**S, "rerun": -1}), "spec.rerun"),
    ("type-not-string", "tasks", task({"type": 7}), "spec.type"),
    ("tasktype-without-image", "tasktypes", tasktype({"command": ["run"]}), "spec.image: Required value"),
    ("tasktype-bad-limit", "tasktypes", tasktype({"image": "i", "limits": {"cpu": "abc"}}), "spec.limits.cpu"),
    ("tasktype-negative-limit", "tasktypes", tasktype({"image": "i", "limits": {"memory": "-1Gi"}}), "spec.limits.memory: Invalid value"),
    ("tasktype-zero-limit", "tasktypes", tasktype({"image": "i", "limits": {"cpu": "0"}}), "spec.limits.cpu: Invalid value"),
    ("tasktype-negative-default", "tasktypes", tasktype({"image": "i", "defaults": {"resources": {"memory": "-1Gi"}}}),
     "spec.defaults.resources.memory: Invalid value"),
    ("tasktype-bad-env-name", "tasktypes", tasktype({"image": "i", "env": [{"name": "1BAD", "value": "x"}]}), "spec.env[0].name"),
    ("queue-negative-max", "taskqueues", queue({"maxRunning": -1}), "spec.maxRunning"),
    ("schedule-negative-memory", "taskschedules",
     {"apiVersion": API, "kind": "TaskSchedule", "metadata": {"name": "s"},
      "spec": {"schedule": "* * * * *", "taskTemplate": {"spec": {**S, "resources": {"memory": "-1Gi"}}}}},
     "spec.taskTemplate.spec.resources.memory: Invalid value"),
    ("queue-unknown-field", "taskqueues", queue({"maxRuning": 3}), 'unknown field "spec.maxRuning"'),
]


@pytest.mark.parametrize("plural,body,needle", [c[1:] for c in INVALID_CREATES], ids=[c[0] for c in INVALID_CREATES])
def test_invalid_manifest_is_rejected_naming_the_field(kube: KubeSync, namespace: str, plural: str, body: dict[str, Any], needle: str) -> None:
    with pytest.raises(ApiError) as error:
        kube.create(tasks_path(namespace, plural=plural), body, fieldValidation="Strict")
    assert error.value.status in (400, 422), error.value
    assert needle in error.value.message, error.value.message
    with pytest.raises(ApiError) as missing:  # nothing was stored
        kube.get(tasks_path(namespace, body["metadata"]["name"], plural=plural))
    assert missing.value.status == 404


@pytest.mark.parametrize("cpu,memory", [("100m", "512Mi"), ("1", "1Gi"), ("0.5", "1e9"), ("+2", "1.5Gi"), ("1e3", "128974848")])
def test_positive_quantities_in_every_spelling_are_accepted(kube: KubeSync, namespace: str, cpu: str, memory: str) -> None:
    stored = kube.create(tasks_path(namespace), task({**S, "resources": {"cpu": cpu, "memory": memory}}), fieldValidation="Strict")
    assert stored["spec"]["resources"] == {"cpu": cpu, "memory": memory}
    kube.create(tasks_path(namespace, plural="tasktypes"), tasktype({"image": "i", "limits": {"cpu": cpu, "memory": memory},
                                                                     "defaults": {"resources": {"cpu": cpu, "memory": memory}}}))


def test_kubectl_apply_names_the_negative_quantity(namespace: str, bin_dir: Path, kubeconfig: Path) -> None:
    manifest = "apiVersion: kubetask.io/v1alpha1\nkind: Task\nmetadata: {name: t}\nspec:\n  type: echo\n  resources: {memory: -1Gi}\n"
    done = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
                          input=manifest, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "spec.resources.memory" in done.stderr and "must be a positive Kubernetes quantity" in done.stderr, done.stderr


def test_kubectl_apply_refuses_a_clearly_oversized_parameter_naming_the_field(namespace: str, bin_dir: Path, kubeconfig: Path,
                                                                              kube: KubeSync) -> None:
    """policies/kubetask.io_task-parameters-size.yaml: 90 KB in one top-level string is refused at
    admission, and nothing is stored."""
    manifest = json.dumps(task({**S, "parameters": {"blob": "x" * 90_000}}, name="big"))
    done = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
                          input=manifest, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "spec.parameters: must be at most 32768 bytes serialized" in done.stderr and "90004 characters" in done.stderr, done.stderr
    with pytest.raises(ApiError) as missing:
        kube.get(tasks_path(namespace, "big"))
    assert missing.value.status == 404
    # Right at the bound (keys and strings counted): admitted; the exact byte count is the operator's.
    at_bound = kube.create(tasks_path(namespace), task({**S, "parameters": {"blob": "x" * (32_768 - 4)}}, name="at-bound"))
    assert len(at_bound["spec"]["parameters"]["blob"]) == 32_764


def test_parameter_size_below_the_top_level_is_left_to_the_gateway_and_operator(kube: KubeSync, namespace: str) -> None:
    """What docs/resources.md ("Where parameters are bounded") says the API server does NOT refuse:
    90 KB nested below the top level. If this starts failing, the API server has learnt to bound
    them: update that section (and drop the operator's then-dead path) rather than this test."""
    body = task({**S, "parameters": {"files": {"blob": "x" * 90_000}}}, name="big")
    big = kube.create(tasks_path(namespace), body, fieldValidation="Strict")
    assert len(big["spec"]["parameters"]["files"]["blob"]) == 90_000


STORED = {"type": "echo", "parameters": {"n": 1}, "retries": 2, "queue": "default", "resources": {"cpu": "100m"}}
INVALID_UPDATES: list[tuple[str, dict[str, Any], str]] = [
    ("change-type", {"type": "other"}, "type is immutable"),
    ("change-parameters", {"parameters": {"n": 2}}, "parameters is immutable"),
    ("add-parameter", {"parameters": {"n": 1, "m": 2}}, "parameters is immutable"),
    ("change-retries", {"retries": 3}, "retries is immutable"),
    ("add-timeout", {"timeoutSeconds": 60}, "timeoutSeconds is immutable"),
    ("change-queue", {"queue": "other"}, "queue is immutable"),
    ("change-resources", {"resources": {"cpu": "200m"}}, "resources is immutable"),
    ("rerun-jumps", {"rerun": 2}, "rerun can only be raised by one"),
]


@pytest.mark.parametrize("change,needle", [c[1:] for c in INVALID_UPDATES], ids=[c[0] for c in INVALID_UPDATES])
def test_immutable_spec_edits_are_rejected_and_nothing_changes(kube: KubeSync, namespace: str, change: dict[str, Any], needle: str) -> None:
    stored = kube.create(tasks_path(namespace), task(copy.deepcopy(STORED)))
    with pytest.raises(ApiError) as error:
        kube.patch(tasks_path(namespace, "t"), {"spec": change})
    assert error.value.status == 422 and needle in error.value.message, error.value.message
    after = kube.get(tasks_path(namespace, "t"))
    # (The operator may write status meanwhile; the spec and its generation must not move.)
    assert after["metadata"]["generation"] == stored["metadata"]["generation"]
    assert after["spec"] == stored["spec"]


def test_cancel_only_goes_on_and_rerun_may_switch_it_off(kube: KubeSync, namespace: str) -> None:
    kube.create(tasks_path(namespace), task(dict(STORED)))
    kube.patch(tasks_path(namespace, "t"), {"spec": {"cancel": True}})
    with pytest.raises(ApiError) as error:
        kube.patch(tasks_path(namespace, "t"), {"spec": {"cancel": False}})
    assert error.value.status == 422 and "cancel cannot be switched back off" in error.value.message
    assert kube.get(tasks_path(namespace, "t"))["spec"]["cancel"] is True
    rerun = kube.patch(tasks_path(namespace, "t"), {"spec": {"cancel": False, "rerun": 1}})
    assert (rerun["spec"]["cancel"], rerun["spec"]["rerun"]) == (False, 1)
    with pytest.raises(ApiError) as backwards:
        kube.patch(tasks_path(namespace, "t"), {"spec": {"rerun": 0}})
    assert "rerun can only be raised by one" in backwards.value.message


def test_valid_manifests_are_accepted_with_defaults(kube: KubeSync, namespace: str) -> None:
    minimal = kube.create(tasks_path(namespace), task({"type": "echo"}, name="minimal"))
    assert (minimal["spec"]["cancel"], minimal["spec"]["rerun"]) == (False, 0)
    # Before the operator writes anything, kstatus (Flux) must read the Task as in progress.
    assert minimal["status"] == {"observedGeneration": 0} and minimal["metadata"]["generation"] == 1
    full = kube.create(tasks_path(namespace), task({
        "type": "echo", "parameters": {"nested": {"list": [1, "two", None]}}, "queue": "gpu", "priority": -5,
        "resources": {"cpu": "1500m", "memory": "2Gi", "gpu": 1}, "timeoutSeconds": 3600, "retries": 3,
        "nonRetryableExitCodes": [65, 78], "ttlSecondsAfterFinished": 600}, name="full"), fieldValidation="Strict")
    assert full["spec"]["parameters"] == {"nested": {"list": [1, "two", None]}}
    tt = kube.create(tasks_path(namespace, plural="tasktypes"), tasktype({"image": "i"}))
    assert tt["spec"]["gpuResourceName"] == "nvidia.com/gpu"
    q = kube.create(tasks_path(namespace, plural="taskqueues"), {"apiVersion": API, "kind": "TaskQueue", "metadata": {"name": "q"}})
    assert q["spec"] == {"maxRunning": 10, "paused": False}


def test_status_is_a_subresource(kube: KubeSync, namespace: str) -> None:
    """Users editing the main resource cannot forge status (only the operator writes /status)."""
    created = kube.create(tasks_path(namespace), task({"type": "echo"}, name="s"))
    updated = kube.patch(tasks_path(namespace, "s"), {"status": {"phase": "Succeeded"}})
    assert updated.get("status", {}).get("phase") != "Succeeded"
    assert updated["metadata"]["generation"] == created["metadata"]["generation"]
