#!/usr/bin/env python3
"""The local Kubernetes control plane for tests and the demo, run as plain processes.

    python hack/localcluster.py up [--name NAME] [--real-node]   # build (cached) + start; prints the kubeconfig path
    python hack/localcluster.py down [--name NAME]
    python hack/localcluster.py kubeconfig [--name NAME]

Real etcd, kube-apiserver, kube-controller-manager (Job controller, garbage collector, TTL
controller) and kube-scheduler, plus kwok, which plays the kubelet for fake nodes. kwokctl's
`binary` runtime starts them; every binary comes from `hack/build-controlplane.sh` (the Go module
proxy, cached in ~/.cache/kubetask), so nothing is downloaded at start. Everything binds to
127.0.0.1 and ~/.kube/config is never touched.

API Priority and Fairness is on, with kube-apiserver's default in-flight limits (see
APISERVER_FLOW_CONTROL), so FlowSchemas behave, 429s included, as on a real cluster.

Fake nodes: `cpu-node-{0,1,2}` (CPU only) and `gpu-node-{0,1}` (4 × nvidia.com/gpu each).

Simulated Job pods follow the annotations on their pod template (see SIM_* below): a test says
"run 2 s, then exit 3 with this termination message" and the real Job controller sees exactly that.
Pods of an Indexed Job (a fan-out Task) can fail by index (SIM_EXIT_CODES) and put their index
into their message.
Pods must carry at least one annotation for kwok to evaluate the stages (every kubetask pod has
kubetask.io/parameters); pods of Deployments and bare pods keep running.

With `--real-node`, a real kubelet on containerd joins as `real-node-0` (hack/realnode.py), tainted
`kubetask.io/real-node=true:NoSchedule`: only pods that tolerate it run real containers, from the
images hack/build-realnode.sh builds. `down` stops it too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KUBETASK_CACHE", Path.home() / ".cache" / "kubetask"))
DEFAULT_NAME = "kubetask"

# Pod-template annotations that drive the simulated container (kwok stages below).
SIM_RUN_FOR = "sim.kubetask.io/run-for"  # e.g. "2s": time in Running before the container exits
SIM_EXIT_CODE = "sim.kubetask.io/exit-code"  # non-zero: the container fails with this code
SIM_MESSAGE = "sim.kubetask.io/message"  # the container's termination message (the handler result)
SIM_REASON = "sim.kubetask.io/reason"  # the terminated state's reason on failure (default Error)
# Fan-out Tasks (Indexed Jobs): per-item exit codes, a JSON object {"<completion index>": code},
# e.g. '{"3": 5, "7": 5}' fails items 3 and 7 with exit code 5 and lets every other item succeed.
# In SIM_MESSAGE, "{index}" stands for the pod's completion index (per-item results).
SIM_EXIT_CODES = "sim.kubetask.io/exit-codes"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # set by the Job controller on Indexed Job pods

KUBERNETES_SERVICE_IP = "10.0.0.1"
# kwok manages only nodes with this annotation (the fake ones), never the real kubelet's node.
KWOK_NODE_ANNOTATION, KWOK_NODE_VALUE = "kwok.x-k8s.io/node", "fake"
CPU_NODES = 3
GPU_NODES = 2
GPUS_PER_NODE = 4
GPU_RESOURCE = "nvidia.com/gpu"

# API Priority and Fairness on, as on every real cluster (on by default since Kubernetes 1.20).
# kwokctl's `disableQPSLimits` (wanted for the controller-manager's and scheduler's client QPS)
# also starts kube-apiserver with `--enable-priority-and-fairness=false` and unlimited in-flight
# requests; these overrides (kwokctl `override: true` replaces its flag in place) restore the
# upstream defaults, so the APF API (flowcontrol.apiserver.k8s.io/v1) is served, the mandatory and
# suggested FlowSchemas exist, and a FlowSchema a test creates really answers 429. Every component
# kwokctl starts (and the tests' admin client) is in system:masters, which APF exempts.
APISERVER_FLOW_CONTROL = {
    "enable-priority-and-fairness": "true",
    "max-requests-inflight": "400",  # kube-apiserver's defaults; APF divides their sum among
    "max-mutating-requests-inflight": "200",  # the priority levels by nominalConcurrencyShares
}

_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_RUNNING = {"key": ".status.phase", "operator": "In", "values": ["Running"]}
_JOB_POD = {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]}  # Deployments keep running
_EXIT_CODE = f'.metadata.annotations["{SIM_EXIT_CODE}"]'
_RUN_FOR = {"durationFrom": {"expressionFrom": f'.metadata.annotations["{SIM_RUN_FOR}"]'}, "durationMilliseconds": 0}
# This pod's entry in SIM_EXIT_CODES (a jq query, null when there is none). The `//` defaults keep
# it null, never an error, for pods without an index or without the annotation: a selector that
# errs matches nothing, and every other pod would hang.
_INDEX_EXIT_CODE = (f'(.metadata.annotations["{COMPLETION_INDEX}"] // "") as $index'
                    f' | (.metadata.annotations["{SIM_EXIT_CODES}"] // "{{}}" | fromjson)[$index]')

_TERMINATED = """
      {{{{ $now := Now }}}}
      {{{{ $root := . }}}}
      {{{{ $completion := or (index .metadata.annotations "{completion_index}") "" }}}}
      containerStatuses:
      {{{{ range $index, $item := .spec.containers }}}}
      - image: {{{{ $item.image | Quote }}}}
        name: {{{{ $item.name | Quote }}}}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {exit_code}
            finishedAt: {{{{ $now | Quote }}}}
            reason: {reason}
            message: {{{{ or (index $root.metadata.annotations "{message}") "" | replace "{{index}}" $completion | Quote }}}}
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      phase: {phase}
"""


def _stage(name: str, kind: str, selector: list[dict[str, object]], next_: dict[str, object],
           delay: dict[str, object] | None = None, extra: dict[str, object] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"resourceRef": {"apiGroup": "v1", "kind": kind},
                               "selector": {"matchExpressions": selector}, "next": next_}
    if delay:
        spec["delay"] = delay
    spec.update(extra or {})
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def stages(kwok_module: Path) -> list[dict[str, object]]:
    """kwok's own node stages and pod-ready/pod-delete, plus annotation-driven completion stages."""
    base = kwok_module / "kustomize" / "stage"
    own = [yaml.safe_load((base / p).read_text()) for p in (
        "node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml", "pod/fast/pod-ready.yaml")]
    # A deleted pod goes at once, finalizers included: there is no kubelet to honour them, and a
    # Job pod's tracking finalizer would otherwise keep it (and its GPUs) while its namespace goes.
    delete = _stage("kubetask-pod-delete", "Pod", [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
                    {"finalizers": {"empty": True}, "delete": True})
    succeed = _stage(
        "kubetask-pod-succeed", "Pod",
        [_NOT_DELETED, _RUNNING, _JOB_POD, {"key": _EXIT_CODE, "operator": "DoesNotExist"},
         {"key": _INDEX_EXIT_CODE, "operator": "DoesNotExist"}],
        {"statusTemplate": _TERMINATED.format(exit_code=0, reason="Completed", message=SIM_MESSAGE, phase="Succeeded",
                                              completion_index=COMPLETION_INDEX)},
        delay=_RUN_FOR,
    )
    fail = _stage(
        "kubetask-pod-fail", "Pod",
        [_NOT_DELETED, _RUNNING, _JOB_POD, {"key": _EXIT_CODE, "operator": "Exists"}],
        {"statusTemplate": _TERMINATED.format(
            exit_code=f'{{{{ index $root.metadata.annotations "{SIM_EXIT_CODE}" }}}}',
            reason=f'{{{{ or (index $root.metadata.annotations "{SIM_REASON}") "Error" | Quote }}}}',
            message=SIM_MESSAGE, phase="Failed", completion_index=COMPLETION_INDEX)},
        delay=_RUN_FOR,
    )
    # One item of a fan-out fails: its index has an entry in SIM_EXIT_CODES (and no exit-code
    # annotation applies to every pod).
    fail_item = _stage(
        "kubetask-pod-fail-item", "Pod",
        [_NOT_DELETED, _RUNNING, _JOB_POD, {"key": _EXIT_CODE, "operator": "DoesNotExist"},
         {"key": _INDEX_EXIT_CODE, "operator": "Exists"}],
        {"statusTemplate": _TERMINATED.format(
            exit_code=f'{{{{ index (fromJson (index $root.metadata.annotations "{SIM_EXIT_CODES}")) $completion }}}}',
            reason=f'{{{{ or (index $root.metadata.annotations "{SIM_REASON}") "Error" | Quote }}}}',
            message=SIM_MESSAGE, phase="Failed", completion_index=COMPLETION_INDEX)},
        delay=_RUN_FOR,
    )
    return [*own, delete, succeed, fail, fail_item]


def nodes() -> list[dict[str, object]]:
    def node(name: str, capacity: dict[str, str], labels: dict[str, str]) -> dict[str, object]:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"type": "kwok", "kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux", **labels},
                         "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE, "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {},
            "status": {"allocatable": capacity, "capacity": capacity},
        }

    cpu = {"cpu": "32", "memory": "128Gi", "pods": "1000"}
    result = [node(f"cpu-node-{i}", cpu, {"kubetask.io/node-kind": "cpu"}) for i in range(CPU_NODES)]
    result += [node(f"gpu-node-{i}", {**cpu, GPU_RESOURCE: str(GPUS_PER_NODE)},
                    {"kubetask.io/node-kind": "gpu", "nvidia.com/gpu.present": "true"}) for i in range(GPU_NODES)]
    return result


@dataclass
class LocalCluster:
    name: str = DEFAULT_NAME

    @property
    def workdir(self) -> Path:
        return CACHE / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    # -- binaries -------------------------------------------------------------------------------
    def binaries(self) -> Path:
        """Build or reuse the cached binaries; the build prints its own progress to stderr."""
        result = subprocess.run(["bash", str(REPO / "hack" / "build-controlplane.sh")], stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit("building the control plane failed (see the messages above)")
        return Path(result.stdout.strip().splitlines()[-1])

    def env(self, bin_dir: Path) -> dict[str, str]:
        return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KWOK_WORKDIR": str(self.workdir)}

    # -- lifecycle ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        bin_dir = self.binaries()
        probe = subprocess.run([str(bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
                               capture_output=True, text=True, timeout=20)
        return probe.returncode == 0

    def real_node(self) -> Any:
        """The real kubelet node of this cluster (hack/realnode.py), started by up(real_node=True)."""
        here = str(Path(__file__).resolve().parent)
        if here not in sys.path:
            sys.path.insert(0, here)
        import realnode

        return realnode.RealNode(self.name, self.cluster_dir, self.kubeconfig, self.binaries() / "kubectl")

    def up(self, install_crds: bool = True, real_node: bool = False) -> Path:
        bin_dir = self.binaries()
        if self.is_running():
            self._log(f"cluster {self.name!r} already running")
            if real_node:
                self._start_real_node()
            return self.kubeconfig
        self.down(quiet=True)
        env = self.env(bin_dir)
        versions = dict(line.split("=", 1) for line in (REPO / "hack" / "versions.env").read_text().splitlines()
                        if "=" in line and not line.startswith("#"))
        kwok_module = Path(subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()) / f"sigs.k8s.io/kwok@{versions['KWOK_VERSION']}"
        config = self._write_config(bin_dir, versions["KUBE_VERSION"], kwok_module)
        self._log(f"starting cluster {self.name!r} (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)")
        started = time.monotonic()
        create = subprocess.run(
            [str(bin_dir / "kwokctl"), "create", "cluster", "--name", self.name, "--runtime", "binary",
             "--kubeconfig", "", "--config", str(config), "--wait", "90s", "--quiet-pull"],
            env=env, capture_output=True, text=True,
        )
        if create.returncode != 0:
            self._report_failure(f"kwokctl create cluster failed (exit {create.returncode}):\n{create.stderr[-3000:]}")
        kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        applied = subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump_all(nodes()), capture_output=True, text=True, env=env)
        if applied.returncode != 0:
            self._report_failure(f"creating the fake nodes failed:\n{applied.stderr}")
        self._wait(kubectl, ["wait", "--for=condition=Ready", "node", "--all", "--timeout=60s"], "nodes Ready", env)
        self._wait(kubectl, ["get", "serviceaccount", "default", "-n", "default"], "the default ServiceAccount", env, retries=60)
        if install_crds:
            # policies/ goes with the CRDs: the admission policy that keeps handlers to progress
            # (docs/security.md) must guard tasks/status from the first Task on.
            crds = subprocess.run([*kubectl, "apply", "--server-side", "-f", str(REPO / "crds"), "-f", str(REPO / "policies")],
                                  capture_output=True, text=True, env=env)
            if crds.returncode != 0:
                self._report_failure(f"installing the CRDs failed:\n{crds.stderr}")
            self._wait(kubectl, ["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"], "CRDs established", env)
        self._log(f"cluster {self.name!r} ready in {time.monotonic() - started:.1f}s")
        if real_node:
            self._start_real_node()
        return self.kubeconfig

    def _start_real_node(self) -> None:
        node = self.real_node()
        if node.is_running():
            self._log(f"real node of {self.name!r} already running")
            node.refresh_images()
            return
        try:
            node.up()
        except node.error as error:
            self._report_failure(str(error))

    def down(self, quiet: bool = False) -> None:
        """Stop every process running from this cluster's folder, then delete the folder.

        Not `kwokctl delete cluster`: with `--kubeconfig ""` (which keeps it away from
        ~/.kube/config) it exits at once with "empty path" and leaves etcd and kube-apiserver
        running, and a process restarted by restart_component is not in its records anyway.
        """
        if (self.cluster_dir / "realnode").exists():
            self.real_node().down(quiet=quiet)
        processes = self._processes()
        if processes or self.cluster_dir.exists():
            _terminate(processes)
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
            if not quiet:
                self._log(f"cluster {self.name!r} deleted ({len(processes)} processes stopped)")

    def _processes(self) -> list[int]:
        """Live processes whose program is in this cluster's bin/ (kwokctl copies the binaries there)."""
        prefix = str(self.cluster_dir) + os.sep
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
            except OSError:
                continue
            if argv0.startswith(prefix) and _alive(int(proc.name)):
                found.append(int(proc.name))
        return found

    def restart_component(self, component: str, down_seconds: float = 0.0) -> None:
        """Kill one component (e.g. kube-apiserver) with SIGKILL and start it again with the same
        command line: the fault-injection tests use it to cut the API server mid-burst."""
        pid_file = self.cluster_dir / "pids" / f"{component}.pid"
        pid = int(pid_file.read_text().strip())
        proc = Path(f"/proc/{pid}")
        argv = [a for a in (proc / "cmdline").read_bytes().decode().split("\0") if a]
        cwd = os.readlink(proc / "cwd")
        env = dict(e.split("=", 1) for e in (proc / "environ").read_bytes().decode().split("\0") if "=" in e)
        os.kill(pid, 9)
        while Path(f"/proc/{pid}").exists() and "zombie" not in (Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}/status").exists() else "zombie"):
            time.sleep(0.05)
        time.sleep(down_seconds)
        log = open(self.cluster_dir / "logs" / f"{component}.log", "ab")
        started = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pid_file.write_text(str(started.pid))

    # -- helpers --------------------------------------------------------------------------------
    def _write_config(self, bin_dir: Path, kube_version: str, kwok_module: Path) -> Path:
        options = {
            "runtime": "binary",
            "kubeVersion": kube_version,
            "bindAddress": "127.0.0.1",
            "etcdBinary": str(bin_dir / "etcd"),
            "kubeApiserverBinary": str(bin_dir / "kube-apiserver"),
            "kubeControllerManagerBinary": str(bin_dir / "kube-controller-manager"),
            "kubeSchedulerBinary": str(bin_dir / "kube-scheduler"),
            "kwokControllerBinary": str(bin_dir / "kwok"),
            "kubectlBinary": str(bin_dir / "kubectl"),
            # Job pods are created no faster than kube-controller-manager's client allows (~20 QPS).
            "disableQPSLimits": True,
            # The `kubernetes` Service's ClusterIP (kube-apiserver's default range 10.0.0.0/24):
            # pods on the real node reach the API server there (hack/realnode.py), and verify it.
            "kubeApiserverCertSANs": [KUBERNETES_SERVICE_IP],
        }
        pki = self.cluster_dir / "pki"
        # kube-apiserver → kubelet (logs): kwokctl's admin certificate (system:masters) as the
        # client certificate, which the real kubelet's webhook authorizer accepts; and the node's
        # InternalIP before its Hostname, which no resolver here knows (hack/realnode.py). kwok's
        # fake nodes have a Hostname address only, so they are dialled as before.
        kubelet_client = {
            "kubelet-client-certificate": str(pki / "admin.crt"),
            "kubelet-client-key": str(pki / "admin.key"),
            "kubelet-preferred-address-types": "InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
        }
        kwokctl = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration",
            "options": options,
            "componentsPatches": [
                {"name": "etcd", "extraArgs": [{"key": "unsafe-no-fsync", "value": "true"}]},
                {"name": "kube-apiserver", "extraArgs": [
                    *({"key": key, "value": value, "override": True} for key, value in APISERVER_FLOW_CONTROL.items()),
                    # New flags: with `override` kwokctl would only replace a flag it already sets.
                    *({"key": key, "value": value} for key, value in kubelet_client.items())]},
                # kwokctl's binary runtime starts kwok with --manage-all-nodes=true: it would take
                # the real kubelet's node too (its lease, its status, its pods). Only the fake
                # nodes (annotated, see nodes()) are kwok's.
                # (kwokctl finds no "key value" pair to replace and appends the flag; the last one wins.)
                {"name": "kwok-controller", "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false", "override": True},
                    {"key": "manage-nodes-with-annotation-selector", "value": f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_VALUE}"}]},
            ],
        }
        path = CACHE / "kwok" / f"{self.name}-config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all([kwokctl, *stages(kwok_module)], sort_keys=False))
        return path

    def _wait(self, kubectl: list[str], args: list[str], what: str, env: dict[str, str], retries: int = 1) -> None:
        for attempt in range(retries):
            done = subprocess.run([*kubectl, *args], capture_output=True, text=True, env=env)
            if done.returncode == 0:
                return
            time.sleep(1)
        self._report_failure(f"timed out waiting for {what}: {done.stderr.strip()}")

    def _report_failure(self, message: str) -> None:
        """A component that fails is reported with the tail of its log, never a silent hang."""
        lines = [f"error: {message}"]
        logs = self.cluster_dir / "logs"
        for log in sorted(logs.glob("*.log")) if logs.exists() else []:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            lines.append(f"--- last lines of {log} ---")
            lines.extend(tail)
        raise SystemExit("\n".join(lines))

    @staticmethod
    def _log(message: str) -> None:
        print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def _alive(pid: int) -> bool:
    """Running, not a zombie (an exited child nobody has reaped yet still has a /proc entry)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pids: list[int], grace: float = 5.0, first: int = signal.SIGTERM) -> None:
    """`first` (SIGTERM), then SIGKILL what is still running after `grace` seconds (kube-apiserver
    can wait a long time for etcd during its graceful shutdown). hack/realnode.py uses it too."""
    for sig in dict.fromkeys((first, signal.SIGKILL)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_alive(pid) for pid in pids):
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "kubeconfig", "binaries"])
    parser.add_argument("--name", default=os.environ.get("KUBETASK_CLUSTER", DEFAULT_NAME))
    parser.add_argument("--real-node", action="store_true",
                        help="also start real-node-0, a real kubelet on containerd (root; hack/realnode.py)")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.name)
    if args.command == "up":
        print(cluster.up(real_node=args.real_node))
    elif args.command == "down":
        cluster.down()
    elif args.command == "kubeconfig":
        print(cluster.kubeconfig)
    else:
        print(cluster.binaries())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
