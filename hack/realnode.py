"""A real kubelet node beside the kwok nodes of the local control plane (`localcluster.py up --real-node`).

One node, `real-node-0`: the kubelet built by hack/build-realnode.sh on Debian's containerd and
runc, with the images that script builds from the repository's Dockerfiles loaded into its
containerd (namespace k8s.io). It is tainted `kubetask.io/real-node=true:NoSchedule` and labelled
`kubetask.io/node-kind=real`, so only pods that tolerate the taint and select the label land there
(a TaskType's nodeSelector and tolerations); kwok does not manage it (kwokctl's kwok only takes nodes
annotated kwok.x-k8s.io/node=fake).

Isolation, so that it collides with nothing else on the machine and reaches nothing:
- containerd has its own config, root, state and socket under the cluster's folder, never the
  machine's /var/lib/containerd or /run/containerd/containerd.sock, and runc its own state root.
  (containerd 1.6 still puts its shims' sockets in /run/containerd/s/, named by a hash of our
  socket's path, so they cannot clash.) Its shims are found by that socket on the way down.
- the kubelet and containerd (and so every container, hostNetwork ones included, and every image
  pull) run in a network namespace of its own, `kt-<hash of the cluster name>`: the node's "host
  network", with nothing but loopback and the pods' bridge. An image that is not loaded cannot be
  pulled from anywhere, and no packet leaves that namespace. Each pod gets loopback and an eth0 on
  that bridge (CNI `bridge`), with one route (below). The kubelet reaches pods' addresses for its
  probes over the bridge, and containerd's stream server (exec, attach, port-forward) on the
  namespace's loopback, as on any node.
- the kubelet listens on its node address only (`node_ip`, below), keeps its state, pod logs and
  certificates in the cluster's folder, and puts pods under the cgroup `/kubetask-<cluster>`
  (cgroupfs driver, cgroup v1).

Two ways through, and only these (docs/real-node.md):
- API server → kubelet (`kubectl logs`, `exec`, `port-forward`, the gateway's log stream): the
  node's address is `node_ip`, from the benchmarking range 198.18.0.0/15, on the loopback of both
  the machine (labelled `lo:kt<hash>`) and the node's namespace. The kubelet listens on it inside;
  outside, a socat listens on the same address and port and hands each connection through a Unix
  socket in the cluster's folder to a second socat inside, which connects it to the kubelet. TLS
  runs end to end. Traffic to it never leaves the machine. (The kubelet refuses a loopback node
  IP, and kube-apiserver would try the node's Hostname first: localcluster sets
  --kubelet-preferred-address-types=InternalIP,... and gives kube-apiserver a kubelet client
  certificate.)
- node and pods → API server (the kubelet itself; a handler's progress reports; the operator and
  gateway when the chart runs them there): in the node's namespace the `kubernetes` Service's
  ClusterIP (KUBERNETES_SERVICE_HOST in every pod) is an address of its own, and pods have one
  route, to it alone, over the bridge. A socat there listens on it and hands every connection to
  a Unix socket in the cluster's folder, where a second socat, outside, connects it to
  kube-apiserver on 127.0.0.1. Pods reach that one port and nothing else (the namespace does not
  forward). kube-apiserver's certificate names the ClusterIP (localcluster's
  kubeApiserverCertSANs), so the kubelet and the SDK verify it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

# localcluster imports this module with hack/ on sys.path; one way to stop processes serves both.
from localcluster import _alive, _terminate

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KUBETASK_CACHE", Path.home() / ".cache" / "kubetask"))

NODE_NAME = "real-node-0"
TAINT_KEY = "kubetask.io/real-node"
TAINT = f"{TAINT_KEY}=true:NoSchedule"
NODE_LABELS = {"kubetask.io/node-kind": "real", TAINT_KEY: "true"}
# What a TaskType sets to run its Tasks on the real node.
NODE_SELECTOR = {"kubetask.io/node-kind": "real"}
TOLERATION = {"key": TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
PAUSE_IMAGE = "localhost/kubetask/pause:local"
# Pod addresses: they exist only inside the node's own network namespace (see _containerd_config).
POD_SUBNET = "10.244.77.0/24"
# cgroup v1 hierarchies the kubelet and runc use (cgroupfs driver); `systemd` is the named one.
CGROUP_V1 = Path("/sys/fs/cgroup")


class NodeError(Exception):
    """The node could not start; the message carries the tail of the logs that explain it."""


@dataclass
class RealNode:
    cluster: str
    cluster_dir: Path  # the kwok cluster's folder: the node lives in <cluster_dir>/realnode
    kubeconfig: Path
    kubectl: Path
    error = NodeError  # what up() raises, for callers that load this module by path

    @property
    def dir(self) -> Path:
        return self.cluster_dir / "realnode"

    @property
    def logs(self) -> Path:
        # Beside kwokctl's own component logs, so localcluster's failure report tails them too.
        return self.cluster_dir / "logs"

    @property
    def netns(self) -> str:
        # Named by a hash: interface and namespace names stay short, and no two clusters share one.
        return f"kt-{hashlib.sha256(self.cluster.encode()).hexdigest()[:10]}"

    @property
    def node_ip(self) -> str:
        """The kubelet's address: 198.18.0.0/15 is reserved for benchmarks (RFC 2544), so it is no
        one's real address; chosen by the cluster's name, so two clusters' nodes differ."""
        digest = hashlib.sha256(self.cluster.encode()).digest()
        return f"198.{18 + digest[0] % 2}.{digest[1]}.{1 + digest[2] % 254}"

    @property
    def node_ip_label(self) -> str:
        # An interface label marks the address as this node's (at most 15 characters: "lo:" + 12).
        return f"lo:{self.netns.replace('-', '')}"[:15]

    @property
    def cgroup(self) -> str:
        return f"/kubetask-{self.cluster}"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    # -- build ----------------------------------------------------------------------------------
    @staticmethod
    def build() -> tuple[Path, Path, list[str]]:
        """The kubelet, the node's image archive and the references in it (hack/build-realnode.sh:
        cached, progress on stderr)."""
        done = subprocess.run(["bash", str(REPO / "hack" / "build-realnode.sh")], stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise NodeError("building the real node failed (see the messages above)")
        kubelet = Path(done.stdout.strip().splitlines()[-1])
        images = CACHE / "realnode" / "images"
        archive = Path((images / "current").read_text().strip())
        refs = [line for line in (images / "current.refs").read_text().splitlines() if line]
        return kubelet, archive, refs

    # -- lifecycle ------------------------------------------------------------------------------
    COMPONENTS = ("containerd", "kubelet", "relay-host", "relay-node", "kubelet-relay-host", "kubelet-relay-node")

    def is_running(self) -> bool:
        pids = self._pid_files()
        return all(n in pids and _alive(pids[n]) for n in self.COMPONENTS)

    def up(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (containerd, runc, cgroups, network namespaces)")
        kubelet, archive, refs = self.build()
        self.down(quiet=True)
        self.dir.mkdir(parents=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._netns_up()
        self._node_ip_up()
        service_ip, service_port = self._start_api_relay()
        self._start_containerd(service_ip)
        self._import(archive, refs)
        self._cgroups_up()
        kubelet_port = _free_port()
        self._start_kubelet_relay(kubelet_port)
        self._start_kubelet(kubelet, kubelet_port, f"https://{service_ip}:{service_port}")
        self._wait_ready()
        _log(f"real node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s (taint {TAINT})")

    def refresh_images(self) -> None:
        """A running node gets the images built since it started (hack/build-realnode.sh rebuilds
        whatever changed in the repository)."""
        _, archive, refs = self.build()
        loaded = self.dir / "loaded-archive"
        if not loaded.exists() or loaded.read_text() != str(archive):
            self._import(archive, refs)

    def down(self, quiet: bool = False) -> None:
        """Stop the kubelet, every container, the shims and containerd; unmount and delete what
        they left. Only processes of this node: found by its pid files, its containerd socket (the
        shims' command line) and its cgroup (the containers)."""
        if not self.dir.exists() and not _netns_exists(self.netns) and not self._has_node_ip():
            return
        pids = self._pid_files()
        _terminate([pids[n] for n in ("kubelet",) if n in pids], grace=10.0)
        # Containers: every process in this node's cgroup (pod sandboxes and handlers).
        _terminate(self._cgroup_processes(), grace=2.0, first=signal.SIGKILL)
        _terminate([pid for pid in _all_pids() if str(self.socket) in _cmdline(pid)], grace=5.0)  # shims
        _terminate([pids[n] for n in ("containerd", *(c for c in self.COMPONENTS if "relay" in c)) if n in pids], grace=5.0)
        _unmount_under(self.dir)
        self._cgroups_down()
        if _netns_exists(self.netns):
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
        subprocess.run(["ip", "addr", "del", f"{self.node_ip}/32", "dev", "lo"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if not quiet:
            _log(f"real node {NODE_NAME} stopped")

    # -- pieces ---------------------------------------------------------------------------------
    def _netns_up(self) -> None:
        # Nothing but a loopback interface (with the node's address): no veth, no route, so nothing
        # inside reaches out.
        for cmd in (["ip", "netns", "add", self.netns], ["ip", "-n", self.netns, "link", "set", "lo", "up"],
                    ["ip", "-n", self.netns, "addr", "add", f"{self.node_ip}/32", "dev", "lo"]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise NodeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")

    def _has_node_ip(self) -> bool:
        shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
        return f" {self.node_ip}/32 " in shown

    def _node_ip_up(self) -> None:
        if not self._has_node_ip():
            _run(["ip", "addr", "add", f"{self.node_ip}/32", "dev", "lo", "label", self.node_ip_label])

    def _service_address(self) -> tuple[str, int]:
        """The `kubernetes` Service's ClusterIP and port: what the kubelet puts in every pod's
        KUBERNETES_SERVICE_HOST/PORT."""
        done = subprocess.run([str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "get", "service", "kubernetes",
                               "-n", "default", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].port}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise NodeError(f"reading the kubernetes Service failed: {done.stderr.strip()}")
        ip, port = done.stdout.split()
        return ip, int(port)

    def _apiserver_port(self) -> int:
        server = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        return int(server.rsplit(":", 1)[1].rstrip("/"))

    def _start_api_relay(self) -> tuple[str, int]:
        """The one way out of the node's namespace: the `kubernetes` Service's address, relayed to
        kube-apiserver through a Unix socket (see the module's docstring). socat is Debian's; the
        socket is the only thing both namespaces see."""
        ip, port = self._service_address()
        _run(["ip", "-n", self.netns, "addr", "add", f"{ip}/32", "dev", "lo"])
        sock = self.dir / "apiserver.sock"
        self._spawn("relay-host", ["socat", f"UNIX-LISTEN:{sock},fork,mode=600",
                                   f"TCP:127.0.0.1:{self._apiserver_port()}"])
        self._wait(sock.exists, 10, "the API server relay's socket", "relay-host")
        self._spawn("relay-node", ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                                   "socat", f"TCP-LISTEN:{port},bind={ip},fork,reuseaddr", f"UNIX-CONNECT:{sock}"])
        return ip, port

    def _start_kubelet_relay(self, port: int) -> None:
        """The way in (see the module's docstring): node_ip:port on the machine, relayed to the
        kubelet on node_ip:port inside the node's namespace."""
        sock = self.dir / "kubelet.sock"
        self._spawn("kubelet-relay-node", ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                                           "socat", f"UNIX-LISTEN:{sock},fork,mode=600", f"TCP:{self.node_ip}:{port}"])
        self._wait(sock.exists, 10, "the kubelet relay's socket", "kubelet-relay-node")
        self._spawn("kubelet-relay-host", ["socat", f"TCP-LISTEN:{port},bind={self.node_ip},fork,reuseaddr",
                                           f"UNIX-CONNECT:{sock}"])

    def _containerd_config(self, service_ip: str) -> Path:
        d = self.dir
        cni_conf = d / "cni"
        cni_conf.mkdir()
        # containerd's CRI needs an eth0 with an address in every pod (loopback alone fails with
        # "failed to find network info for sandbox"). So: a bridge inside the node's own network
        # namespace (kt-<hash>, which has nothing else), pod addresses from POD_SUBNET, and one
        # route: to the `kubernetes` Service's address (the API server relay, in this namespace),
        # through the bridge. No default route, and the namespace forwards nothing: a pod reaches
        # its own loopback, its neighbours on the bridge and the relay, and nothing leaves.
        (cni_conf / "10-kubetask.conflist").write_text(json.dumps({
            "cniVersion": "0.3.1", "name": "kubetask-isolated", "plugins": [{
                "type": "bridge", "bridge": "kt0", "isGateway": True, "isDefaultGateway": False,
                "ipMasq": False, "hairpinMode": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                         "routes": [{"dst": f"{service_ip}/32"}],
                         "dataDir": str(d / "cni-ipam")},
            }],
        }, indent=2))
        cri = "io.containerd.grpc.v1.cri"
        config = f"""# containerd for the local real node {NODE_NAME} of cluster {self.cluster!r} (hack/realnode.py).
version = 2
root = "{d / 'containerd-root'}"
state = "{d / 'containerd-state'}"
oom_score = 0

[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'containerd-opt'}"
[plugins."{cri}"]
  # Built locally (hack/realnode/pause.c): there is no registry to pull registry.k8s.io/pause from.
  sandbox_image = "{PAUSE_IMAGE}"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  # This sandbox's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj: the
  # kubelet's -998 for pod sandboxes failed in runc ("failed to update /proc/self/oom_score_adj:
  # Permission denied"). Restricted, containerd clamps scores to its own (0) instead.
  restrict_oom_score_adj = true
  [plugins."{cri}".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."{cri}".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."{cri}".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which('runc') or '/usr/sbin/runc'}"
        Root = "{d / 'runc'}"
        SystemdCgroup = false
  [plugins."{cri}".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""
        path = d / "containerd.toml"
        path.write_text(config)
        return path

    def _start_containerd(self, service_ip: str) -> None:
        config = self._containerd_config(service_ip)
        # nsenter --net only: the mount namespace stays the machine's, so containerd sees the
        # kubelet's volume mounts (ip netns exec would give it a mount namespace of its own).
        self._spawn("containerd", ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                                   "containerd", "--config", str(config), "--log-level", "info"])
        self._wait(lambda: self._ctr("version").returncode == 0, 30, "containerd", "containerd")

    def _import(self, archive: Path, refs: list[str]) -> None:
        started = time.monotonic()
        done = self._ctr("-n", "k8s.io", "images", "import", str(archive))
        if done.returncode != 0:
            raise NodeError(f"ctr images import {archive} failed: {done.stderr.strip()}")
        loaded = set(self._ctr("-n", "k8s.io", "images", "ls", "-q").stdout.split())
        missing = [ref for ref in refs if ref not in loaded]
        if missing:
            raise NodeError(f"{archive} did not load {missing}")
        (self.dir / "loaded-archive").write_text(str(archive))
        _log(f"loaded {len(refs)} images into the node's containerd in {time.monotonic() - started:.1f}s")

    def _cgroups_up(self) -> None:
        """Create /kubetask-<cluster> in every v1 hierarchy: the kubelet's --cgroup-root must exist."""
        for hierarchy in _v1_hierarchies():
            path = hierarchy / self.cgroup.lstrip("/")
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":  # a cpuset cgroup takes no task before cpus and mems are set
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (path / f).write_text((hierarchy / f).read_text())

    def _cgroups_down(self) -> None:
        # The kubelet (cadvisor) also makes the cgroup in the v2 `unified` hierarchy.
        for hierarchy in [*_v1_hierarchies(), CGROUP_V1 / "unified"]:
            root = hierarchy / self.cgroup.lstrip("/")
            if root.exists():
                for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                    _rmdir(sub)
                _rmdir(root)

    def _start_kubelet(self, kubelet: Path, port: int, api_server: str) -> None:
        d = self.dir
        healthz = _free_port()
        # Inside the namespace the API server is the `kubernetes` Service's address (the relay).
        kubeconfig = yaml.safe_load(self.kubeconfig.read_text())
        for cluster in kubeconfig["clusters"]:
            cluster["cluster"]["server"] = api_server
        node_kubeconfig = d / "kubelet-kubeconfig.yaml"
        node_kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        node_kubeconfig.chmod(0o600)
        ca = self.cluster_dir / "pki" / "ca.crt"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup, "cgroupsPerQOS": True,
            "failSwapOn": False,
            "address": self.node_ip, "port": port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": healthz,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(ca)}},
            "authorization": {"mode": "Webhook"},
            "podLogsDir": str(d / "pod-logs"),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "maxPods": 16,
            # Loaded images are all there is: never garbage-collect them, never evict on this
            # shared machine's disk usage.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "serializeImagePulls": True,
            "resolvConf": "",  # pods have no network: no DNS
            "localStorageCapacityIsolation": True,
            "nodeStatusReportFrequency": "10s", "nodeStatusUpdateFrequency": "5s",
            "staticPodPath": "",
            "shutdownGracePeriod": "0s",
        }
        path = d / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        (d / "pod-logs").mkdir()
        labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
        self._spawn("kubelet", ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                                str(kubelet), "--config", str(path), "--kubeconfig", str(node_kubeconfig),
                                "--root-dir", str(d / "kubelet"), "--cert-dir", str(d / "kubelet-pki"),
                                "--hostname-override", NODE_NAME, "--node-ip", self.node_ip,
                                "--node-labels", labels, "--v", "2"])

    def _wait_ready(self) -> None:
        def ready() -> bool:
            done = subprocess.run([str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "get", "node", NODE_NAME,
                                   "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
                                  capture_output=True, text=True)
            return done.stdout.strip() == "True"
        self._wait(ready, 120, f"node {NODE_NAME} Ready", "kubelet")

    # -- helpers --------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"realnode-{name}.log", "ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        (self.dir / f"{name}.pid").write_text(str(process.pid))

    def _pid_files(self) -> dict[str, int]:
        found = {}
        for f in self.dir.glob("*.pid") if self.dir.exists() else []:
            try:
                found[f.stem] = int(f.read_text().strip())
            except ValueError:
                pass
        return found

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.socket), *args], capture_output=True, text=True, timeout=600)

    def _cgroup_processes(self) -> list[int]:
        pids: set[int] = set()
        for hierarchy in _v1_hierarchies():
            root = hierarchy / self.cgroup.lstrip("/")
            for procs in root.rglob("cgroup.procs") if root.exists() else []:
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
        return sorted(pids)

    def _wait(self, probe: Callable[[], bool], timeout: float, what: str, component: str) -> None:
        deadline = time.monotonic() + timeout
        pid = self._pid_files().get(component)
        while time.monotonic() < deadline:
            if probe():
                return
            if pid is not None and not _alive(pid):
                raise NodeError(f"{component} exited while waiting for {what}\n{self.tail(component)}")
            time.sleep(0.5)
        raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.tail(component)}")

    def tail(self, component: str, lines: int = 25) -> str:
        log = self.logs / f"realnode-{component}.log"
        text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
        return "\n".join([f"--- last lines of {log} ---", *text])


def _log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _v1_hierarchies() -> list[Path]:
    if not CGROUP_V1.exists():
        return []
    return [p for p in sorted(CGROUP_V1.iterdir()) if p.is_dir() and p.name != "unified" and (p / "cgroup.procs").exists()]


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""




def _unmount_under(path: Path) -> None:
    """Lazily unmount every mount below `path`, deepest first (overlay rootfs, volume tmpfs, shm)."""
    prefix = str(path) + os.sep
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target.startswith(prefix):
            mounts.append(target)
    for target in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
