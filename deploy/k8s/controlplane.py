#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, without containers: for the chart tests and `make k8s`.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as processes built from Go
modules (deploy/k8s/build.sh -> <repo>/.cache/k8s/bin); kwok plays the kubelets of three fake nodes
(one per zone), so pods are scheduled, get IPs, become Ready and Services get endpoints, but no
container ever runs. `helm test` pods (bare pods with restartPolicy Never) are completed by the stage
in deploy/k8s/stages/.

Everything listens on 127.0.0.1 on free ports; the API server authenticates one static token that is
in system:masters (written into <workdir>/kubeconfig) and serves a self-signed certificate that the
kubeconfig trusts. Standard library only: `make k8s` runs it before any virtualenv exists.

    python3 deploy/k8s/controlplane.py run [--workdir .data/k8s] [--prometheus-crds]

Python API (the test fixtures load this file with importlib, as they do deploy/kafka/broker.py)::

    with running(tmp_path / "k8s") as plane:
        plane.kubectl("get", "nodes")            # CompletedProcess; plane.kubeconfig for helm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AGENTWIRE_K8S_CACHE", REPO / ".cache" / "k8s"))
OWN_STAGES = Path(__file__).resolve().parent / "stages"
TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
# Three fake nodes in three zones, so that the chart's topology spread has something to spread over.
NODES = (("kwok-a", "zone-a"), ("kwok-b", "zone-b"), ("kwok-c", "zone-c"))
VOLUMES = 32  # claims bind for good (a released volume is not reused): enough for a test session
NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
STOP_GRACE_S = 15.0


class ControlPlaneError(RuntimeError):
    """A component is missing, did not become ready, or exited."""


@dataclasses.dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclasses.dataclass
class ControlPlane:
    workdir: Path
    server: str
    kubeconfig: Path
    bin_dir: Path
    share_dir: Path
    components: list[Component]

    def tool(self, name: str) -> Path:
        return self.bin_dir / name

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this plane; a failure raises ControlPlaneError with its stderr."""
        cmd = [str(self.tool("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def get(self, *args: str) -> dict:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def exited(self) -> list[Component]:
        return [c for c in self.components if c.popen.poll() is not None]

    def prometheus_crds(self) -> list[Path]:
        """The Prometheus Operator's CRD files (build.sh copies them out of its pinned module)."""
        crds = sorted((self.share_dir / "crds").glob("monitoring.coreos.com_*.yaml"))
        if not crds:
            raise ControlPlaneError(f"no CRDs in {self.share_dir / 'crds'}: run `bash deploy/k8s/build.sh`")
        return crds

    def install_prometheus_crds(self) -> None:
        """Install the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule, ...) and wait until served."""
        files = [a for crd in self.prometheus_crds() for a in ("-f", str(crd))]
        # Server-side apply: these CRDs are too large for client-side apply's last-applied annotation.
        self.kubectl("apply", "--server-side", *files)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *files)

    def remove_prometheus_crds(self) -> None:
        files = [a for crd in self.prometheus_crds() for a in ("-f", str(crd))]
        self.kubectl("delete", "--ignore-not-found", "--wait=true", *files)


# --- start and stop ------------------------------------------------------------------------------


def start(workdir: Path, *, cache: Path = CACHE, timeout: float = 120.0) -> ControlPlane:
    """Start every component in a fresh ``workdir``; return once nodes are Ready and controllers run."""
    bin_dir, share_dir = cache / "bin", cache / "share"
    missing = [t for t in TOOLS if not (bin_dir / t).is_file()]
    if missing or not (share_dir / "stages").is_dir():
        raise ControlPlaneError(
            f"missing in {cache}: {', '.join(missing) or 'share/stages'}; build them with `bash deploy/k8s/build.sh` "
            "(the Makefile's k8s targets do)")
    _stop_leftovers(workdir, bin_dir)
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    deadline = time.monotonic() + timeout
    etcd_port, peer_port, api_port, kcm_port, sched_port = _free_ports(5)
    token = secrets.token_hex(24)
    (workdir / "tokens.csv").write_text(f'{token},agentwire-admin,agentwire-admin,"system:masters"\n')
    sa_key = workdir / "sa.key"
    subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
    pki = workdir / "pki"
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = workdir / "kubeconfig"
    plane = ControlPlane(workdir, server, kubeconfig, bin_dir, share_dir, [])

    def launch(name: str, *args: str) -> Component:
        log = workdir / "logs" / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([str(bin_dir / name), *args], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        component = Component(name, popen, log)
        plane.components.append(component)
        (workdir / "pids.json").write_text(json.dumps({c.name: c.popen.pid for c in plane.components}))
        return component

    try:
        launch(
            "etcd", "--name=agentwire", f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}", f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=agentwire=http://127.0.0.1:{peer_port}",
            # Throw-away data on a shared disk: durability buys nothing here.
            "--unsafe-no-fsync", "--log-level=warn",
        )
        _await(plane, "etcd /health", deadline, lambda: b'"health":"true"' in _get(f"http://127.0.0.1:{etcd_port}/health"))
        launch(
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--cert-dir={pki}", f"--token-auth-file={workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}", f"--service-account-signing-key-file={sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The default reconciler refuses to publish a loopback address as the `kubernetes` Service's
            # endpoint ("may not be in the loopback range"); nothing in this plane needs that endpoint.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        )
        serving = pki / "apiserver.crt"
        _await(plane, "kube-apiserver /readyz", deadline,
               lambda: _get(f"{server}/readyz", token=token, cafile=serving) == b"ok")
        ca = _extract_ca(serving, pki / "ca.crt")
        _write_kubeconfig(kubeconfig, server, ca, token)
        delegated = [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                     f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", "--leader-elect=false"]
        launch(
            "kube-controller-manager", *delegated, f"--secure-port={kcm_port}", f"--cert-dir={workdir / 'kcm'}",
            f"--service-account-private-key-file={sa_key}", f"--root-ca-file={ca}",
            # Evaluate HPAs every 5 s instead of 15 s: the tests wait for the first evaluation.
            "--horizontal-pod-autoscaler-sync-period=5s",
        )
        launch("kube-scheduler", *delegated, f"--secure-port={sched_port}", f"--cert-dir={workdir / 'scheduler'}")
        stages = sorted((share_dir / "stages").glob("*.yaml")) + sorted(OWN_STAGES.glob("*.yaml"))
        launch(
            "kwok", f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake", f"--cidr={POD_CIDR}",
            # Renew a Lease per node, as kubelets do. Without a KwokConfiguration the default is 0 (no
            # leases): the node-lifecycle controller then marks the nodes NotReady after its grace period
            # and their pods not ready, which kwok's stages never undo.
            "--node-lease-duration-seconds=40",
            *(f"--config={s}" for s in stages),
        )
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            _await(plane, f"{name} /healthz", deadline, lambda p=port: _get(f"https://127.0.0.1:{p}/healthz") == b"ok")
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(_node_list()))
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(_storage_list()))
        _await(plane, "nodes Ready with their leases renewed", deadline, lambda: _nodes_ready(plane))
        # The controller-manager's service-account controller creates `default` in every namespace.
        _await(plane, "the default ServiceAccount", deadline,
               lambda: plane.kubectl("get", "serviceaccount", "default", check=False).returncode == 0)
    except BaseException:
        stop(plane)
        raise
    return plane


def stop(plane: ControlPlane) -> None:
    """Stop every component, newest first: SIGTERM, then SIGKILL after a grace period."""
    for component in reversed(plane.components):
        _terminate(component.popen.pid, lambda c=component: c.popen.poll() is not None)
    with contextlib.suppress(FileNotFoundError):
        (plane.workdir / "pids.json").unlink()


@contextlib.contextmanager
def running(workdir: Path, **kwargs: float | Path) -> Iterator[ControlPlane]:
    plane = start(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield plane
    finally:
        stop(plane)


# --- helpers -------------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _get(url: str, *, token: str | None = None, cafile: Path | None = None) -> bytes:
    """Body of a GET, or b"" when the server is not (yet) answering."""
    if url.startswith("https://"):
        if cafile is not None:
            if not cafile.is_file():
                return b""
            context = ssl.create_default_context(cafile=str(cafile))
        else:
            # A component's own self-signed serving certificate on loopback; /healthz carries no secrets.
            context = ssl._create_unverified_context()  # noqa: S323
    else:
        context = None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own http(s) URLs
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310 - own URLs
            return bytes(response.read())
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return b""


def _await(plane: ControlPlane, what: str, deadline: float, condition: Callable[[], bool]) -> None:
    while not condition():
        for component in plane.exited():
            raise ControlPlaneError(
                f"{component.name} exited ({component.popen.returncode}) while waiting for {what}:\n{component.tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.name}\n{c.tail(10)}" for c in plane.components)
            raise ControlPlaneError(f"{what} not reached in time; last log lines:\n{logs}")
        time.sleep(0.2)


def _extract_ca(serving: Path, ca: Path) -> Path:
    """The self-signed CA alone: apiserver.crt holds the serving certificate followed by its CA, and the
    controller-manager publishes --root-ca-file as a trust bundle, which must hold CA certificates only."""
    end = "-----END CERTIFICATE-----"
    blocks = [b.strip() + "\n" + end + "\n" for b in serving.read_text().split(end) if b.strip()]
    if len(blocks) != 2:
        raise ControlPlaneError(f"{serving}: expected a certificate and its CA, found {len(blocks)} certificates")
    ca.write_text(blocks[1])
    return ca


def _write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "agentwire",
        "clusters": [{"name": "agentwire", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "agentwire-admin", "user": {"token": token}}],
        "contexts": [{"name": "agentwire", "context": {"cluster": "agentwire", "user": "agentwire-admin"}}],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _node_list() -> dict:
    nodes = []
    for name, zone in NODES:
        nodes.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                           "topology.kubernetes.io/zone": zone, "type": "kwok"},
            },
            # Created with a capacity (as a kubelet registers its node); kwok's node stage keeps it.
            "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
        })
    return {"apiVersion": "v1", "kind": "List", "items": nodes}


def _storage_list() -> dict:
    """A default StorageClass and a pool of volumes for it, as a cluster's provisioner would give: the
    controller-manager's volume binder binds claims (the processor's StatefulSet) to them. No data is
    ever written: no container runs."""
    storage_class = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Retain",
    }
    volumes = [{
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pool-{n:02d}"},
        "spec": {"capacity": {"storage": "64Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "standard", "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": f"/var/lib/agentwire-pool/{n:02d}"}},
    } for n in range(VOLUMES)]
    return {"apiVersion": "v1", "kind": "List", "items": [storage_class, *volumes]}


def _nodes_ready(plane: ControlPlane) -> bool:
    nodes = plane.get("nodes")["items"]
    ready = {n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
    leased = {lease["metadata"]["name"] for lease in plane.get("leases", "-n", "kube-node-lease")["items"]
              if lease["spec"].get("renewTime")}
    return ready & leased >= {name for name, _ in NODES}


def _terminate(pid: int, exited: Callable[[], bool]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while not exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not exited():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while not exited():
            time.sleep(0.05)


def _stop_leftovers(workdir: Path, bin_dir: Path) -> None:
    """Stop components an earlier run in this workdir left behind (its runner was killed)."""
    try:
        pids = json.loads((workdir / "pids.json").read_text())
    except (OSError, ValueError):
        return
    for pid in reversed(list(pids.values())):
        try:
            exe = Path(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        if exe.parent == bin_dir.resolve():  # still ours, not a recycled pid

            def gone(p: int = pid) -> bool:
                return not Path(f"/proc/{p}").exists() or "zombie" in _proc_state(p)

            _terminate(pid, gone)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


# --- command line --------------------------------------------------------------------------------


def run(workdir: Path, *, prometheus_crds: bool) -> int:
    """Start the plane, print how to use it, and keep it up until Ctrl-C / SIGTERM or a component exits."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    plane = start(workdir)
    try:
        if prometheus_crds:
            plane.install_prometheus_crds()
        version = json.loads(plane.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
        bins = plane.bin_dir.relative_to(REPO) if plane.bin_dir.is_relative_to(REPO) else plane.bin_dir
        print(f"\n  Kubernetes {version} on {plane.server} (3 kwok nodes), up in {time.monotonic() - started:.1f}s\n"
              f"  export KUBECONFIG={plane.kubeconfig}\n"
              f"  {bins}/kubectl get nodes\n"
              f"  {bins}/helm install aw helm/agentwire --set kafka.bootstrapServers=kafka:9092 --wait\n"
              f"  logs: {workdir / 'logs'}   (Ctrl-C stops everything)\n", flush=True)
        while not stopping:
            if dead := plane.exited():
                print(f"{dead[0].name} exited ({dead[0].popen.returncode}):\n{dead[0].tail()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop(plane)
        print("control plane stopped", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start the plane and keep it up until Ctrl-C")
    run_parser.add_argument("--workdir", type=Path, default=REPO / ".data" / "k8s")
    run_parser.add_argument("--prometheus-crds", action="store_true", help="also install the Prometheus Operator CRDs")
    args = parser.parse_args(argv)
    try:
        return run(args.workdir.resolve(), prometheus_crds=args.prometheus_crds)
    except ControlPlaneError as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
