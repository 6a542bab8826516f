"""values-production.yaml on a real API server, first without the Prometheus Operator CRDs, then with them.

Without the CRDs the ServiceMonitors and the PrometheusRule are left out (`.Capabilities.APIVersions.Has`)
and the install succeeds; with them they are created and the API server validates them against the
operator's CRD schemas. The HPAs are evaluated by the controller-manager (there is no metrics server:
it can only enforce the bounds, which is what the tests check).
"""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import COMPONENT, COMPONENTS, INSTANCE, PRODUCTION, READY_S, Cluster
from tests.support.wait import eventually

BARE_NS, OPERATOR_NS = "aw-prod-bare", "aw-prod-operator"
RELEASE = "prod"
FULLNAME = f"{RELEASE}-agentwire"
# A module-scoped release is installed inside the first test that needs it: room for helm's own --timeout.
pytestmark = pytest.mark.timeout(400)
MONITORING = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
VALUES = yaml.safe_load(PRODUCTION.read_text())


def served(cluster: Cluster, resource: str) -> bool:
    return cluster.kubectl("get", f"crd/{resource}", check=False).returncode == 0


@pytest.fixture(scope="module")
def bare(cluster: Cluster) -> dict[str, Any]:
    """Installed on a cluster without the operator's CRDs."""
    cluster.plane.remove_prometheus_crds()
    assert not any(served(cluster, r) for r in MONITORING)
    cluster.namespace(BARE_NS)
    proc = cluster.install(RELEASE, BARE_NS, PRODUCTION)
    return {"notes": proc.stdout, "deployments": cluster.await_rolled_out(BARE_NS, RELEASE)}


@pytest.fixture(scope="module")
def operator(bare: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    """The same values installed after the CRDs (ordered after ``bare``, which needs them absent)."""
    cluster.plane.install_prometheus_crds()
    cluster.namespace(OPERATOR_NS)
    proc = cluster.install(RELEASE, OPERATOR_NS, PRODUCTION)
    return {"notes": proc.stdout, "deployments": cluster.await_rolled_out(OPERATOR_NS, RELEASE)}


def test_without_the_crds_the_monitors_are_skipped_not_failed(bare: dict[str, Any], cluster: Cluster) -> None:
    manifest = cluster.helm("get", "manifest", RELEASE, "-n", BARE_NS).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"} <= kinds
    assert "NOTE: ServiceMonitor objects were skipped" in bare["notes"]
    assert "NOTE: PrometheusRule objects were skipped" in bare["notes"]


def test_with_the_crds_the_monitors_are_created(operator: dict[str, Any], cluster: Cluster) -> None:
    monitors = cluster.items("servicemonitors", OPERATOR_NS, "-l", f"{INSTANCE}={RELEASE}")
    assert sorted(m["metadata"]["labels"][COMPONENT] for m in monitors) == sorted(COMPONENTS)
    services = {s["metadata"]["name"]: s for s in cluster.items("services", OPERATOR_NS)}
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        (endpoint,) = monitor["spec"]["endpoints"]
        selected = [s for s in services.values()
                    if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(selected) == 1
        assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    (rule,) = cluster.items("prometheusrules", OPERATOR_NS, "-l", f"{INSTANCE}={RELEASE}")
    assert rule["spec"]["groups"] and all(g["rules"] for g in rule["spec"]["groups"])
    assert "objects were skipped" not in operator["notes"]


def test_the_crd_schemas_really_validate(operator: dict[str, Any], cluster: Cluster) -> None:
    # "Created" means "valid" only if the API server checks: a malformed monitor must be refused.
    monitor = cluster.get("servicemonitor", f"{FULLNAME}-edge", "-n", OPERATOR_NS)
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        monitor["metadata"].pop(key, None)
    monitor["metadata"]["name"] = "malformed"
    monitor["spec"]["endpoints"][0]["interval"] = "every now and then"
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(monitor), check=False)
    assert proc.returncode != 0 and "spec.endpoints[0].interval" in proc.stderr


def test_upgrade_after_the_crds_arrive_adds_the_monitors(operator: dict[str, Any], cluster: Cluster) -> None:
    cluster.install(RELEASE, BARE_NS, PRODUCTION, command="upgrade")
    assert len(cluster.items("servicemonitors", BARE_NS, "-l", f"{INSTANCE}={RELEASE}")) == len(COMPONENTS)
    assert len(cluster.items("prometheusrules", BARE_NS, "-l", f"{INSTANCE}={RELEASE}")) == 1


@pytest.mark.parametrize("component", ["edge", "runner"])
def test_hpa_is_accepted_and_enforces_its_bounds(component: str, operator: dict[str, Any], cluster: Cluster) -> None:
    scaling = VALUES[component]["autoscaling"]
    hpa = cluster.get("hpa", f"{FULLNAME}-{component}", "-n", OPERATOR_NS)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": f"{FULLNAME}-{component}"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (scaling["minReplicas"], scaling["maxReplicas"])
    (metric,) = hpa["spec"]["metrics"]
    target = {"type": "Utilization", "averageUtilization": scaling["targetCPUUtilizationPercentage"]}
    assert metric["resource"] == {"name": "cpu", "target": target}
    if component == "edge":
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600

    def evaluated() -> dict[str, Any] | None:
        status = cluster.get("hpa", f"{FULLNAME}-{component}", "-n", OPERATOR_NS).get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        return status if {"AbleToScale", "ScalingActive"} <= conditions.keys() else None

    # The chart leaves `replicas` to the HPA: the Deployment starts at 1 and the controller-manager's
    # HPA controller raises it to minReplicas even without metrics (no metrics server here); the next
    # evaluation asks for CPU metrics and records that it cannot get them.
    status = eventually(evaluated, timeout=READY_S, what=f"the {component} HPA evaluated")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["AbleToScale"]["status"] == "True"
    assert conditions["ScalingActive"]["status"] == "False"  # no metrics API: not scaling on CPU
    assert status["desiredReplicas"] == scaling["minReplicas"]
    cluster.await_pods(OPERATOR_NS, RELEASE, component, scaling["minReplicas"])
    deps = cluster.await_rolled_out(OPERATOR_NS, RELEASE)
    assert deps[component]["spec"]["replicas"] == scaling["minReplicas"]


def test_replicas_spread_over_the_zones(operator: dict[str, Any], cluster: Cluster) -> None:
    zones = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
             for n in cluster.get("nodes")["items"]}
    deps = cluster.await_rolled_out(OPERATOR_NS, RELEASE)
    for component in ("ingest", "processor"):  # fixed replica counts: 3 each, one per zone
        assert deps[component]["spec"]["replicas"] == len(set(zones.values())) == 3
        pods = cluster.pods(OPERATOR_NS, RELEASE, component)
        per_zone = collections.Counter(zones[p["spec"]["nodeName"]] for p in pods)
        assert sorted(per_zone.values()) == [1, 1, 1], f"{component}: {dict(per_zone)}"


def test_production_disruption_budgets_keep_two(operator: dict[str, Any], cluster: Cluster) -> None:
    for component in ("ingest", "edge"):
        def evaluated(c: str = component) -> dict[str, Any] | None:
            pdb = cluster.get("pdb", f"{FULLNAME}-{c}", "-n", OPERATOR_NS)
            status = pdb.get("status", {})
            return status if status.get("currentHealthy") == status.get("expectedPods") == 3 else None

        status = eventually(evaluated, timeout=READY_S, what=f"{component} PDB with 3 healthy pods")
        assert status["desiredHealthy"] == 2 and status["disruptionsAllowed"] == 1, component


def test_uninstall_both(operator: dict[str, Any], cluster: Cluster) -> None:
    for ns in (BARE_NS, OPERATOR_NS):
        cluster.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "120s")
        eventually(lambda n=ns: not cluster.items("pods", n), timeout=READY_S, what=f"pods of {ns} gone")
        for resource in ("servicemonitors", "prometheusrules", "hpa", "pdb", "deployments"):
            assert cluster.items(resource, ns) == [], (ns, resource)
