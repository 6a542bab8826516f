"""The chart on a real API server: the control plane fixture's helpers (helm, kubectl, readiness).

The plane comes from deploy/k8s/controlplane.py (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok nodes); tests drive it with the pinned helm and kubectl it was built with.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.scripts import load_script
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "agentwire"
PRODUCTION = CHART / "values-production.yaml"
PINS = REPO / "deploy" / "k8s" / "go.mod"
BOOTSTRAP = "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"
STORE_DSN = "postgresql://agentwire@postgres:5432/agentwire"
COMPONENTS = ("ingest", "edge", "runner", "processor")
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
READY_S = 120.0


def controlplane_script() -> ModuleType:
    return load_script("deploy/k8s/controlplane.py", "agentwire_controlplane")


class Cluster:
    """helm and kubectl against one running control plane (``plane``: a controlplane.ControlPlane)."""

    def __init__(self, plane: Any) -> None:
        self.plane = plane

    # --- raw tools -------------------------------------------------------------------------------

    def helm(self, *args: str | Path, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.plane.tool("helm")), "--kubeconfig", str(self.plane.kubeconfig), *map(str, args)]
        line = " ".join(map(str, args))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"helm {line} still running after {timeout}s:\n{exc.stderr!s}", pytrace=False)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {line} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)
        return proc

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, stdin=stdin, check=check)  # type: ignore[no-any-return]

    def get(self, *args: str) -> dict[str, Any]:
        return self.plane.get(*args)  # type: ignore[no-any-return]

    def items(self, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
        return list(self.get(kind, "-n", namespace, *selector)["items"])

    # --- releases --------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        """A fresh namespace that enforces the `restricted` Pod Security Standard, as hardened clusters do."""
        manifest = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                                  "pod-security.kubernetes.io/enforce-version": "latest"}},
        }
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
        # The controller-manager gives every namespace its default ServiceAccount (the test hook pod's).
        eventually(lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
                   timeout=READY_S, what=f"ServiceAccount default in {name}")
        return name

    def install(self, release: str, namespace: str, *values: str | Path, command: str = "install",
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """`helm install|upgrade RELEASE CHART --wait`; ``values``: files (Path) or --set expressions (str)."""
        # --debug: on a failure the output says which resource the wait was still waiting for.
        args: list[str | Path] = [command, release, CHART, "-n", namespace, "--wait", "--timeout", "150s", "--debug",
                                  "--set", f"kafka.bootstrapServers={BOOTSTRAP.replace(',', chr(92) + ',')}",
                                  "--set", f"store.dsn={STORE_DSN}"]
        for value in values:
            args += ["-f", value] if isinstance(value, Path) else ["--set", value]
        proc = self.helm(*args, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"helm {command} {release} failed ({proc.returncode}):\n{proc.stderr[-6000:]}\n"
                        f"{self.describe(namespace)}", pytrace=False)
        return proc

    def describe(self, namespace: str) -> str:
        """What a failure message needs: the namespace's workloads, pods (with nodes) and recent events."""
        state = self.kubectl("get", "deployments,statefulsets,replicasets,pods,pvc", "-n", namespace, "-o", "wide",
                             check=False)
        events = self.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)
        tail = "\n".join(events.stdout.splitlines()[-40:])
        return f"--- {namespace}:\n{state.stdout}{state.stderr}\n--- events:\n{tail}"

    # --- state -----------------------------------------------------------------------------------

    def deployments(self, namespace: str, release: str) -> dict[str, dict[str, Any]]:
        """Each component's workload: a Deployment, or the processor's StatefulSet."""
        items = self.items("deployments,statefulsets", namespace, "-l", f"{INSTANCE}={release}")
        return {d["metadata"]["labels"][COMPONENT]: d for d in items}

    def rolled_out(self, namespace: str, release: str) -> dict[str, dict[str, Any]] | None:
        """The release's workloads once each has all its desired replicas updated and Ready, else None."""
        deps = self.deployments(namespace, release)
        for dep in deps.values():
            want, status = dep["spec"]["replicas"], dep["status"]
            if (status.get("observedGeneration") != dep["metadata"]["generation"]
                    or status.get("updatedReplicas") != want or status.get("readyReplicas") != want
                    or status.get("replicas") != want):
                return None
        return deps if sorted(deps) == sorted(COMPONENTS) else None

    def await_rolled_out(self, namespace: str, release: str) -> dict[str, dict[str, Any]]:
        return eventually(lambda: self.rolled_out(namespace, release), timeout=READY_S,
                          what=f"every Deployment of {release} rolled out")

    def pods(self, namespace: str, release: str, component: str) -> list[dict[str, Any]]:
        pods = self.items("pods", namespace, "-l", f"{INSTANCE}={release},{COMPONENT}={component}")
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def await_pods(self, namespace: str, release: str, component: str, count: int,
                   image: str | None = None) -> list[dict[str, Any]]:
        """Wait until the component has exactly ``count`` pods (all running ``image`` if given)."""
        def settled() -> list[dict[str, Any]] | None:
            pods = self.pods(namespace, release, component)
            images = {p["spec"]["containers"][0]["image"] for p in pods}
            return pods if len(pods) == count and (image is None or images == {image}) else None

        return eventually(settled, timeout=READY_S, what=f"{count} {component} pods ({image or 'any image'})")

    def await_endpoints(self, namespace: str, service: str, count: int) -> list[dict[str, Any]]:
        def settled() -> list[dict[str, Any]] | None:
            found = self.endpoints(namespace, service)
            return found if len(found) == count else None

        return eventually(settled, timeout=READY_S, what=f"{count} ready endpoints of Service {service}")

    def endpoints(self, namespace: str, service: str) -> list[dict[str, Any]]:
        """Ready endpoints of a Service, from its EndpointSlices."""
        slices = self.items("endpointslices", namespace, "-l", f"kubernetes.io/service-name={service}")
        return [e for s in slices for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]


def secret_digest(cluster: Cluster, namespace: str, name: str) -> str:
    data = cluster.get("secret", name, "-n", namespace)["data"]
    return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()


def ingress_backend(ingress: dict[str, Any], host: str, path: str) -> dict[str, Any] | None:
    """The backend a conforming Ingress controller picks for host+path (longest matching path wins;
    `Prefix` matches whole path elements, `Exact` the whole path), or None."""
    best: tuple[int, dict[str, Any]] | None = None
    for rule in ingress["spec"]["rules"]:
        if rule.get("host") not in (None, host):
            continue
        for p in rule["http"]["paths"]:
            prefix = p["path"]
            if p["pathType"] == "Exact":
                matched = path == prefix
            else:
                head = prefix.rstrip("/")
                matched = head == "" or path == head or path.startswith(head + "/")
            if matched and (best is None or len(prefix) > best[0]):
                best = (len(prefix), p["backend"])
    return best[1] if best else None
