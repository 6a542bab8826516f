"""A release with the default values through its life: install, ready, test, upgrade, rollback, uninstall.

The phases build on each other (module-scoped fixtures, in file order). Pods run on kwok nodes:
scheduled, given IPs and marked Ready by kwok, but no container runs (see docs/kubernetes.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.k8s.cluster import (
    COMPONENT,
    COMPONENTS,
    INSTANCE,
    PINS,
    READY_S,
    Cluster,
    ingress_backend,
    secret_digest,
)
from tests.support.wait import eventually

RELEASE = "aw"
NS = "aw-lifecycle"
FULLNAME = f"{RELEASE}-agentwire"
# A module-scoped release is installed inside the first test that needs it: room for helm's own --timeout.
pytestmark = pytest.mark.timeout(400)
APP_VERSION = "0.1.0"
NEW_TAG = "0.2.0"


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> dict[str, Any]:
    cluster.namespace(NS)
    proc = cluster.install(RELEASE, NS)
    return {"notes": proc.stdout, "deployments": cluster.await_rolled_out(NS, RELEASE)}


def images(deps: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {c: d["spec"]["template"]["spec"]["containers"][0]["image"] for c, d in deps.items()}


def test_server_is_the_pinned_kubernetes(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    pinned = re.search(r"^\s*k8s\.io/kubernetes (v[0-9.]+)", PINS.read_text(), re.M)
    assert pinned and version["gitVersion"] == pinned.group(1), "Chart.yaml's kubeVersion is checked against this"


def test_fake_nodes_keep_their_leases(cluster: Cluster) -> None:
    # A node whose kubelet (kwok) stops renewing its Lease turns NotReady after the node-monitor grace
    # period, and so do its pods: every later test would wait for readiness that never comes back.
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
    before = {ls["metadata"]["name"]: ls["spec"]["renewTime"] for ls in cluster.items("leases", "kube-node-lease")}
    assert set(before) == nodes

    def renewed() -> bool:
        now = {ls["metadata"]["name"]: ls["spec"]["renewTime"] for ls in cluster.items("leases", "kube-node-lease")}
        return all(now[n] != before[n] for n in nodes)

    eventually(renewed, timeout=READY_S, what="every node lease renewed")


def test_install_with_default_values(installed: dict[str, Any], cluster: Cluster) -> None:
    status = json.loads(cluster.helm("status", RELEASE, "-n", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 1
    assert f"helm test {RELEASE} -n {NS}\n" in installed["notes"]
    assert images(installed["deployments"]) == {c: f"agentwire/agentwire-{c}:{APP_VERSION}" for c in COMPONENTS}


def test_every_deployment_is_ready_on_the_fake_nodes(installed: dict[str, Any], cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
    for component, dep in installed["deployments"].items():
        pods = cluster.pods(NS, RELEASE, component)
        assert len(pods) == dep["spec"]["replicas"] >= 1, component
        for pod in pods:
            assert pod["spec"]["nodeName"] in nodes, "placed by kube-scheduler"
            assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]
            assert pod["spec"]["serviceAccountName"] == FULLNAME


def test_pods_pass_the_restricted_pod_security_standard(installed: dict[str, Any], cluster: Cluster) -> None:
    # The namespace enforces `restricted`: the API server admitted the chart's pods, so they comply.
    labels = cluster.get("namespace", NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert installed["deployments"]
    # ... and the check is not vacuous: a pod that may run as root is refused.
    rogue = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rogue", "namespace": NS},
             "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(rogue), check=False)
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr


def test_services_have_endpoints_of_their_pods(installed: dict[str, Any], cluster: Cluster) -> None:
    services = cluster.items("services", NS, "-l", f"{INSTANCE}={RELEASE}")
    assert sorted(s["metadata"]["labels"][COMPONENT] for s in services) == sorted(COMPONENTS)
    for svc in services:
        component = svc["metadata"]["labels"][COMPONENT]
        pods = {p["metadata"]["name"]: p for p in cluster.pods(NS, RELEASE, component)}
        endpoints = cluster.await_endpoints(NS, svc["metadata"]["name"], len(pods))
        assert {e["targetRef"]["name"] for e in endpoints} == set(pods), component
        assert {e["addresses"][0] for e in endpoints} == {p["status"]["podIP"] for p in pods.values()}


def test_disruption_budgets_are_evaluated(installed: dict[str, Any], cluster: Cluster) -> None:
    def evaluated() -> dict[str, dict[str, Any]] | None:
        pdbs = {p["metadata"]["labels"][COMPONENT]: p for p in cluster.items("pdb", NS, "-l", f"{INSTANCE}={RELEASE}")}
        done = all(p.get("status", {}).get("observedGeneration") == p["metadata"]["generation"] for p in pdbs.values())
        return pdbs if done and sorted(pdbs) == sorted(COMPONENTS) else None

    pdbs = eventually(evaluated, timeout=READY_S, what="PodDisruptionBudgets evaluated by the disruption controller")
    for component, pdb in pdbs.items():
        replicas = installed["deployments"][component]["spec"]["replicas"]
        status = pdb["status"]
        assert status["expectedPods"] == status["currentHealthy"] == replicas, component
        assert pdb["spec"]["maxUnavailable"] == 1
        assert status["disruptionsAllowed"] == 1, component  # one voluntary eviction at a time


def test_ingress_routes_streams_to_edge_and_the_rest_to_ingest(installed: dict[str, Any], cluster: Cluster) -> None:
    ingress = cluster.get("ingress", FULLNAME, "-n", NS)
    expected = {
        "/api/v1/stream/sse": "edge", "/api/v1/stream/ws": "edge", "/api/v1/stream/token": "edge",
        "/api/v1/stream": "edge", "/api/v1/tasks": "ingest", "/api/v1/tasks/t-1/events": "ingest",
        "/openapi.json": "ingest", "/health": "ingest", "/api/v1/streams": "ingest",
    }
    for path, component in expected.items():
        backend = ingress_backend(ingress, "any.example.com", path)
        assert backend is not None, path
        service = cluster.get("service", backend["service"]["name"], "-n", NS)
        assert backend["service"]["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}, path
        # Follow the Service to the pods that would answer: they are the component's.
        endpoints = cluster.endpoints(NS, service["metadata"]["name"])
        assert endpoints, path
        for endpoint in endpoints:
            pod = cluster.get("pod", endpoint["targetRef"]["name"], "-n", NS)
            assert pod["metadata"]["labels"][COMPONENT] == component, path


def test_helm_test_hook_runs_to_completion(installed: dict[str, Any], cluster: Cluster) -> None:
    proc = cluster.helm("test", RELEASE, "-n", NS, "--timeout", "120s")
    assert re.search(rf"TEST SUITE:\s+{FULLNAME}-test-stream", proc.stdout), proc.stdout
    assert re.search(r"Phase:\s+Succeeded", proc.stdout), proc.stdout  # completed by kwok: curl did not run
    # Deleted after success (hook-delete-policy), so that `helm uninstall` has nothing to leave behind.
    pod = f"pod/{FULLNAME}-test-stream"
    eventually(lambda: cluster.kubectl("get", pod, "-n", NS, check=False).returncode != 0,
               timeout=READY_S, what=f"{pod} deleted after it succeeded")


@pytest.fixture(scope="module")
def upgraded(installed: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    before = {
        "deployments": cluster.deployments(NS, RELEASE),
        "token": secret_digest(cluster, NS, f"{FULLNAME}-stream-token"),
        "test-key": secret_digest(cluster, NS, f"{FULLNAME}-test-key"),
    }
    cluster.install(RELEASE, NS, f"image.tag={NEW_TAG}", command="upgrade")
    return {"before": before, "deployments": cluster.await_rolled_out(NS, RELEASE)}


def test_upgrade_with_a_new_image_tag_rolls_every_deployment(upgraded: dict[str, Any], cluster: Cluster) -> None:
    assert images(upgraded["deployments"]) == {c: f"agentwire/agentwire-{c}:{NEW_TAG}" for c in COMPONENTS}
    for component, dep in upgraded["deployments"].items():
        old = upgraded["before"]["deployments"][component]
        assert dep["metadata"]["generation"] > old["metadata"]["generation"], component
        if dep["kind"] == "StatefulSet":  # the processor: one revision, rolled onto every worker
            assert dep["status"]["currentRevision"] == dep["status"]["updateRevision"], component
            assert dep["status"]["updateRevision"] != old["status"]["updateRevision"], component
        else:
            sets = cluster.items("replicasets", NS, "-l", f"{INSTANCE}={RELEASE},{COMPONENT}={component}")
            images_by_replicas = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
                                  for rs in sets}
            assert images_by_replicas == {
                f"agentwire/agentwire-{component}:{APP_VERSION}": 0,
                f"agentwire/agentwire-{component}:{NEW_TAG}": dep["spec"]["replicas"],
            }, component
        # The old pods are gone, not just outnumbered.
        new_image = f"agentwire/agentwire-{component}:{NEW_TAG}"
        cluster.await_pods(NS, RELEASE, component, dep["spec"]["replicas"], new_image)


def test_upgrade_keeps_the_generated_secrets(upgraded: dict[str, Any], cluster: Cluster) -> None:
    # Generated once and found again with `lookup` on every upgrade: tokens and keys stay valid.
    assert secret_digest(cluster, NS, f"{FULLNAME}-stream-token") == upgraded["before"]["token"]
    assert secret_digest(cluster, NS, f"{FULLNAME}-test-key") == upgraded["before"]["test-key"]


def test_rollback_restores_the_previous_images(upgraded: dict[str, Any], cluster: Cluster) -> None:
    cluster.helm("rollback", RELEASE, "1", "-n", NS, "--wait", "--timeout", "180s")
    deps = cluster.await_rolled_out(NS, RELEASE)
    assert images(deps) == {c: f"agentwire/agentwire-{c}:{APP_VERSION}" for c in COMPONENTS}
    history = json.loads(cluster.helm("history", RELEASE, "-n", NS, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert history[-1]["description"] == "Rollback to 1"


def test_uninstall_leaves_nothing(upgraded: dict[str, Any], cluster: Cluster) -> None:
    cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s")
    assert json.loads(cluster.helm("list", "-a", "-n", NS, "-o", "json").stdout) == []
    kinds = cluster.kubectl("api-resources", "--verbs=list,delete", "--namespaced", "-o", "name").stdout.split()

    def leftovers() -> list[str]:
        proc = cluster.kubectl("get", ",".join(kinds), "-n", NS, "-o", "json")
        found = []
        for item in json.loads(proc.stdout)["items"]:
            name = f"{item['kind']}/{item['metadata']['name']}"
            # What Kubernetes itself keeps in every namespace, and the record of what happened.
            if item["kind"] == "Event" or name in ("ServiceAccount/default", "ConfigMap/kube-root-ca.crt"):
                continue
            found.append(name)
        return found

    try:
        eventually(lambda: not leftovers(), timeout=READY_S, what=f"namespace {NS} empty after uninstall")
    except AssertionError:
        pytest.fail(f"left behind in {NS} after helm uninstall: {leftovers()}", pytrace=False)
