"""What each kubetask identity may do: the single list the RBAC tests compare the chart against,
both as rendered rules and as the API server's own answers (`kubectl auth can-i --as`).

(group, resource, verb); group "" is the core API. NAMESPACED rules hold in every watched namespace
(every namespace when the chart watches the whole cluster); CLUSTER rules are cluster-scoped
resources. Anything not listed must be denied.
"""

from __future__ import annotations

from typing import Any

Rule = tuple[str, str, str]


def _expand(rules: list[tuple[str, str, list[str]]]) -> frozenset[Rule]:
    return frozenset((group, resource, verb) for group, resource, verbs in rules for verb in verbs)


READ = ["get", "list", "watch"]

# The operator: reads Tasks, writes their status; creates them for TaskSchedules, cancels them for
# Replace (patch), deletes them for retention and history limits; one Job per run (created,
# deleted on cancel); creates a fan-out's items ConfigMap; lists handler pods (never watches them);
# posts Events (Kopf).
OPERATOR_NAMESPACED = _expand([
    ("kubetask.io", "tasks", [*READ, "create", "patch", "delete"]),
    ("kubetask.io", "tasks/status", ["get", "patch"]),
    ("kubetask.io", "tasktypes", READ),
    ("kubetask.io", "taskqueues", READ),
    ("kubetask.io", "taskqueues/status", ["get", "patch"]),
    ("kubetask.io", "taskschedules", READ),
    ("kubetask.io", "taskschedules/status", ["get", "patch"]),
    ("kubetask.io", "taskgroups", READ),
    ("kubetask.io", "taskgroups/status", ["get", "patch"]),
    ("kubetask.io", "taskwebhooks", READ),
    ("kubetask.io", "taskwebhooks/status", ["get", "patch"]),
    ("", "secrets", ["get"]),  # a TaskWebhook's signing key, read by name: never listed or watched
    ("batch", "jobs", [*READ, "create", "delete"]),
    ("", "configmaps", ["create"]),  # a fan-out's items, one ConfigMap per run (never read back)
    ("", "pods", ["list"]),
    ("", "events", ["create", "patch"]),
])
# Kopf discovers resources from CRDs and lists namespaces (in namespaced mode, to learn which of
# the watched ones exist).
OPERATOR_CLUSTER = _expand([
    ("apiextensions.k8s.io", "customresourcedefinitions", READ),
    ("", "namespaces", READ),
])

# Leader election (operator.leaderElection.enabled, the default): the leader Lease, in the release
# namespace only, whatever the operator watches. Read it, create it once, renew, take over and
# release it by update (PUT with its resourceVersion); no patch, list or watch is used.
OPERATOR_LEADER_ELECTION = _expand([
    ("coordination.k8s.io", "leases", ["get", "create", "update"]),
])

# The gateway: submit (create), cancel/rerun (patch the spec), read and watch Tasks; read the
# registry; read (live, no watch), create, suspend and resume TaskSchedules; pods and logs of a
# Task. Authentication and authorization of its callers.
GATEWAY_NAMESPACED = _expand([
    ("kubetask.io", "tasks", [*READ, "create", "patch"]),
    ("kubetask.io", "tasktypes", READ),
    ("kubetask.io", "taskqueues", READ),
    ("kubetask.io", "taskschedules", ["get", "list", "create", "patch"]),
    ("kubetask.io", "taskwebhooks", ["get"]),  # a submission's spec.webhook: its Ready condition (never the Secret)
    ("kubetask.io", "taskgroups", ["get", "list", "create"]),  # read live (no watch), created empty or by a batch
    ("", "pods", ["get", "list"]),
    ("", "pods/log", ["get"]),
])
GATEWAY_CLUSTER = _expand([
    ("authentication.k8s.io", "tokenreviews", ["create"]),
    ("authorization.k8s.io", "subjectaccessreviews", ["create"]),
])

# Handlers that report progress: their own namespace's tasks/status, nothing else.
HANDLER_NAMESPACED = _expand([("kubetask.io", "tasks/status", ["get", "patch"])])

# Actions that must be denied to everyone above (on top of "whatever is not listed"), checked
# one by one with `kubectl auth can-i`.
ALWAYS_DENIED: list[Rule] = [
    ("", "secrets", "list"), ("", "secrets", "watch"), ("", "secrets", "create"), ("", "secrets", "patch"),
    ("", "pods/exec", "create"), ("", "pods/attach", "create"), ("", "pods", "create"), ("", "pods", "delete"),
    ("", "configmaps", "get"), ("", "serviceaccounts/token", "create"),
    ("kubetask.io", "tasks", "delete"), ("kubetask.io", "tasks", "update"), ("kubetask.io", "tasks", "deletecollection"),
    ("kubetask.io", "tasktypes", "create"), ("kubetask.io", "tasktypes", "delete"),
    ("kubetask.io", "taskqueues", "create"), ("kubetask.io", "taskqueues", "patch"),
    ("kubetask.io", "taskwebhooks", "create"), ("kubetask.io", "taskwebhooks", "patch"), ("kubetask.io", "taskwebhooks", "delete"),
    ("batch", "jobs", "update"), ("batch", "jobs", "patch"),
    ("apps", "deployments", "create"),
    ("rbac.authorization.k8s.io", "roles", "create"), ("rbac.authorization.k8s.io", "rolebindings", "create"),
]
GATEWAY_DENIED: list[Rule] = [
    ("", "secrets", "get"), ("kubetask.io", "taskwebhooks", "list"), ("kubetask.io", "taskwebhooks/status", "patch"),
    ("batch", "jobs", "create"), ("batch", "jobs", "get"), ("batch", "jobs", "delete"),
    ("kubetask.io", "taskschedules", "delete"), ("kubetask.io", "taskschedules/status", "patch"),
    ("kubetask.io", "taskgroups", "delete"), ("kubetask.io", "taskgroups", "patch"), ("kubetask.io", "taskgroups/status", "patch"),
    ("kubetask.io", "tasks/status", "patch"), ("", "events", "create"), ("", "pods", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
]
OPERATOR_DENIED: list[Rule] = [
    ("kubetask.io", "tasks", "update"), ("kubetask.io", "taskschedules", "patch"), ("kubetask.io", "taskschedules", "create"),
    ("kubetask.io", "tasktypes", "patch"), ("", "pods/log", "get"),
    ("authentication.k8s.io", "tokenreviews", "create"), ("authorization.k8s.io", "subjectaccessreviews", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"), ("apiextensions.k8s.io", "customresourcedefinitions", "update"),
]


def rules_of(documents: list[dict[str, Any]]) -> frozenset[Rule]:
    """Flatten Role/ClusterRole rules into (group, resource, verb) triples."""
    found: set[Rule] = set()
    for doc in documents:
        for rule in doc.get("rules", []):
            assert not rule.get("resourceNames"), "no rule is limited by resourceNames"
            assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), f"no wildcards: {rule}"
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        found.add((group, resource, verb))
    return frozenset(found)
