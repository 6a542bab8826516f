"""The helm chart (helm/agentwire): lint, render, validate offline against the Kubernetes schemas.

Needs the helm binary at <repo>/.cache/k8s/bin/helm (`deploy/k8s/build.sh helm` builds it from the
pinned wrapper module deploy/k8s/go.mod); a missing helm is a failure, not a skip. Rendered manifests
are validated with kubernetes-validate (requirements/chart.txt) against the oldest Kubernetes the chart
supports and the newest it knows. The Prometheus Operator kinds (ServiceMonitor, PrometheusRule) have
no built-in schema: their shape is checked by hand below (and against the real CRDs by tests/k8s).
They render only where the cluster serves them, so offline renderings declare the API versions as a
cluster with the operator would. tests/k8s installs the chart on a real API server.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import pytest
import yaml

from agentwire.kafka.admin import topic_configs
from agentwire.processor.app import Processor
from agentwire.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "agentwire"
HELM = REPO / ".cache" / "k8s" / "bin" / "helm"
PINS = REPO / "deploy" / "k8s" / "go.mod"
DASHBOARDS = REPO / "deploy" / "grafana"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"

RELEASE = "aw"
NAMESPACE = "agentwire-test"
BOOTSTRAP = "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"
KUBE_VERSIONS = ("1.25", "1.37")  # Chart.yaml kubeVersion floor, and the newest kubernetes-validate knows
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
OPERATOR_API_VERSIONS = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
                         "--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
COMPONENTS = ("ingest", "edge", "runner", "processor")
SSE_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}

# Value sets rendered by the tests: the defaults, the production file, and everything switched on.
CASES: dict[str, dict[str, Any]] = {
    "default": {"files": [], "values": {}},
    "production": {"files": [CHART / "values-production.yaml"], "values": {}},
    "everything": {
        "files": [],
        "values": {
            "auth": {"keys": [{"name": "ci", "tenant": "acme", "sha256": hashlib.sha256(b"ci-key").hexdigest()}]},
            "ingress": {"host": "agentwire.example.com", "tls": {"enabled": True, "secretName": "agentwire-tls"}},
            "edge": {"autoscaling": {"enabled": True, "connections": {"enabled": True}}},
            "runner": {"autoscaling": {"enabled": True}},
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True},
            "image": {
                "registry": "ghcr.io", "repository": "acme/agentwire", "tag": "1.2.3", "pullSecrets": ["regcred"],
            },
        },
    },
}


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not HELM.is_file():
        pytest.fail(
            f"helm is missing at {HELM}: run `bash deploy/k8s/build.sh helm` (the Makefile's `helm` target) "
            "to build it with `go build` through the Go module proxy",
            pytrace=False,
        )
    proc = subprocess.run([str(HELM), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    return proc


STORE_DSN = "postgresql://agentwire@postgres:5432/agentwire"


def value_args(case: str, tmp_dir: Path, *, bootstrap: str | None = BOOTSTRAP) -> list[str | Path]:
    spec = CASES[case]
    values = dict(spec["values"])
    if bootstrap is not None:
        values["kafka"] = {**values.get("kafka", {}), "bootstrapServers": bootstrap}
        values["store"] = {"dsn": STORE_DSN, **values.get("store", {})}
    extra = tmp_dir / f"{case}-values.yaml"
    extra.write_text(yaml.safe_dump(values))
    args: list[str | Path] = []
    for f in [*spec["files"], extra]:
        args += ["-f", f]
    return args


def render(case: str, tmp_dir: Path, *extra: str, operator: bool = True) -> list[dict[str, Any]]:
    """`helm template`; ``operator``: as on a cluster that serves the Prometheus Operator CRDs."""
    crds = OPERATOR_API_VERSIONS if operator else ()
    proc = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *value_args(case, tmp_dir), *crds, *extra)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def manifests(case: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(case, tmp_path_factory.mktemp(case))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


WORKLOADS = ("Deployment", "StatefulSet")


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each component's workload: a Deployment, or the processor's StatefulSet."""
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] in WORKLOADS}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment, StatefulSet and bare Pod (the helm test hook)."""
    for d in docs:
        if d["kind"] in WORKLOADS:
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- helm itself ---------------------------------------------------------------------------------


def test_helm_is_the_pinned_version() -> None:
    pinned = re.search(r"^\s*helm\.sh/helm/v3 (v[0-9.]+)", PINS.read_text(), re.M)
    assert pinned, "deploy/k8s/go.mod must pin helm.sh/helm/v3"
    assert helm("version", "--template", "{{.Version}}").stdout.strip() == pinned.group(1)


@pytest.mark.parametrize("lint_case", ["default", "production", "everything"])
def test_lint_is_clean(lint_case: str, tmp_path: Path) -> None:
    proc = helm("lint", CHART, "--strict", "--namespace", NAMESPACE, *value_args(lint_case, tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_package_carries_the_linked_dashboards_and_alerts(tmp_path: Path) -> None:
    # dashboards/ and files/alerts.yml are symlinks into deploy/; `helm package` must store the files.
    helm("package", CHART, "--destination", tmp_path)
    (archive,) = tmp_path.glob("agentwire-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "agentwire/files/alerts.yml" in names
    for dashboard in DASHBOARDS.glob("*.json"):
        assert f"agentwire/dashboards/{dashboard.name}" in names


def test_bootstrap_servers_are_required(tmp_path: Path) -> None:
    proc = helm("template", RELEASE, CHART, *value_args("default", tmp_path, bootstrap=None), check=False)
    assert proc.returncode != 0
    assert "bootstrapServers" in proc.stderr


@pytest.mark.parametrize(
    "bad",
    [
        "ingest.replicas=3",  # unknown key: the schema is strict
        "kafka.partitions=0",
        "auth.keys[0].name=x,auth.keys[0].tenant=t,auth.keys[0].sha256=not-a-hash",
        "podSecurityContext.runAsNonRoot=false",
        "ingress.streamPath=api",
    ],
)
def test_schema_rejects_bad_values(bad: str, tmp_path: Path) -> None:
    proc = helm("template", RELEASE, CHART, *value_args("default", tmp_path), "--set", bad, check=False)
    assert proc.returncode != 0, f"--set {bad} was accepted"
    assert "schema" in proc.stderr


def test_runner_autoscaling_beyond_partitions_is_refused(tmp_path: Path) -> None:
    proc = helm(
        "template", RELEASE, CHART, *value_args("default", tmp_path),
        "--set", "runner.autoscaling.enabled=true", "--set", "runner.autoscaling.maxReplicas=13",
        check=False,
    )
    assert proc.returncode != 0
    assert "kafka.partitions" in proc.stderr


def test_every_value_is_described_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if path.count(".") == 1:
            assert node.get("description"), f"{path} has no description in values.schema.json"
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if isinstance(value, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or '<root>'} must be closed in the schema"
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not described by values.schema.json"
                walk(sub, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")


# --- what every rendering must satisfy -----------------------------------------------------------


def test_manifests_validate_against_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    checked = 0
    for doc in manifests:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version} at {path}: "
                            f"{exc.message}")
        checked += 1
    assert checked >= 15


def test_validator_is_not_vacuous() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSIONS[-1], strict=True)


def test_resources_are_in_the_release_namespace(manifests: list[dict[str, Any]]) -> None:
    for doc in manifests:
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"


def test_four_services_with_their_images(manifests: list[dict[str, Any]], case: str) -> None:
    deps = deployments(manifests)
    assert sorted(deps) == sorted(COMPONENTS)
    for component, dep in deps.items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        image = container["image"]
        assert image.rsplit(":", 1)[0].endswith(f"/agentwire-{component}")
        tag = image.rsplit(":", 1)[1]
        assert tag == ("1.2.3" if case == "everything" else "0.1.0")
        assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    if case == "everything":
        assert deps["edge"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
            "ghcr.io/acme/agentwire/agentwire-edge:1.2.3"
        )


def test_probes_point_at_health_and_readiness(manifests: list[dict[str, Any]]) -> None:
    for component, dep in deployments(manifests).items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        port_names = {p["name"] for p in container["ports"]}
        probes = (("livenessProbe", "/health"), ("readinessProbe", "/readiness"), ("startupProbe", "/health"))
        for probe, path in probes:
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{component} {probe}"
            assert get["port"] in port_names, f"{component} {probe} port {get['port']}"


def test_ports_and_environment(manifests: list[dict[str, Any]]) -> None:
    expected_port = {"ingest": 8080, "edge": 8080, "runner": 9101, "processor": 9102}
    for component, dep in deployments(manifests).items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["AGENTWIRE_HTTP__HOST"] == "0.0.0.0"  # noqa: S104 - containers listen on every interface
        assert env["AGENTWIRE_KAFKA__BOOTSTRAP_SERVERS"] == BOOTSTRAP
        assert env["AGENTWIRE_CONFIG"] == "/etc/agentwire/config/agentwire.yaml"
        assert {"AGENTWIRE_KAFKA__PARTITIONS", "AGENTWIRE_KAFKA__TOPIC_PREFIX",
                "AGENTWIRE_KAFKA__REPLICATION_FACTOR", "ENVIRONMENT"} <= env.keys()
        (port,) = container["ports"]
        assert port["containerPort"] == expected_port[component]
        http = component in ("ingest", "edge")
        port_env = "AGENTWIRE_HTTP__PORT" if http else f"AGENTWIRE_{component.upper()}__OPS_PORT"
        assert env[port_env] == str(expected_port[component])
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        if component in ("ingest", "edge"):
            assert Path(env["AGENTWIRE_AUTH__KEYS_FILE"]).parent.as_posix() in mounts
            assert env["AGENTWIRE_AUTH__STREAM_TOKEN_SECRET"]["secretKeyRef"]["name"]
        if component == "processor":
            assert env["AGENTWIRE_PROCESSOR__DATA_DIR"] in mounts


def test_security_context_is_locked_down(manifests: list[dict[str, Any]]) -> None:
    claims = {d["metadata"]["name"]: d["spec"].get("volumeClaimTemplates", [])
              for d in of_kind(manifests, "StatefulSet")}
    for name, pod in pod_workloads(manifests):
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc.get("runAsUser", 1) != 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        volumes.update({c["metadata"]["name"]: {"claim": c} for c in claims.get(name, [])})
        for container in pod["containers"]:
            csc = container["securityContext"]
            assert csc["readOnlyRootFilesystem"] is True, name
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in csc["capabilities"], name
            assert csc.get("runAsNonRoot", True) is True, name
            # A read-only root filesystem needs writable scratch space: /tmp is an emptyDir.
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], name
            for mount in container["volumeMounts"]:
                if not mount.get("readOnly"):
                    writable = volumes[mount["name"]]
                    assert "emptyDir" in writable or "claim" in writable, (
                        f"{name}: writable {mount['mountPath']} is neither an emptyDir nor the workload's own claim")


def test_services_select_their_pods(manifests: list[dict[str, Any]]) -> None:
    deps = deployments(manifests)
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in of_kind(manifests, "Service")}
    assert sorted(services) == sorted(COMPONENTS)
    for component, svc in services.items():
        pod = deps[component]["spec"]["template"]
        assert matches(svc["spec"]["selector"], pod["metadata"]["labels"])
        port_names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names
        if component in ("runner", "processor"):
            assert svc["spec"]["clusterIP"] == "None"  # headless: metrics discovery only
        assert svc["metadata"]["labels"]["agentwire.io/job"] == f"agentwire-{component}"


def test_every_service_has_a_disruption_budget(manifests: list[dict[str, Any]]) -> None:
    pdbs = of_kind(manifests, "PodDisruptionBudget")
    for component, dep in deployments(manifests).items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert [p for p in pdbs if matches(p["spec"]["selector"]["matchLabels"], labels)], component


def test_ingress_routes_streams_to_edge_with_sse_settings(manifests: list[dict[str, Any]]) -> None:
    (ingress,) = of_kind(manifests, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    for key, value in SSE_ANNOTATIONS.items():
        assert annotations.get(key) == value, key
    services = {s["metadata"]["name"]: s for s in of_kind(manifests, "Service")}
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    assert set(routes) == {"/api/v1/stream", "/"}
    edge = services[routes["/api/v1/stream"]["name"]]
    ingest = services[routes["/"]["name"]]
    assert edge["metadata"]["labels"]["app.kubernetes.io/component"] == "edge"
    assert ingest["metadata"]["labels"]["app.kubernetes.io/component"] == "ingest"
    for backend, svc in ((routes["/api/v1/stream"], edge), (routes["/"], ingest)):
        assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
    assert all(p["pathType"] == "Prefix" for p in rule["http"]["paths"])


def test_dashboards_are_shipped_with_the_grafana_label(manifests: list[dict[str, Any]]) -> None:
    shipped: dict[str, str] = {}
    for cm in of_kind(manifests, "ConfigMap"):
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1":
            shipped.update(cm["data"])
    expected = {p.name: p.read_text() for p in sorted(DASHBOARDS.glob("*.json"))}
    assert expected, "deploy/grafana/ has no dashboards"
    assert set(shipped) == set(expected), "every deploy/grafana/*.json becomes a dashboard ConfigMap"
    for name, text in expected.items():
        assert json.loads(shipped[name]) == json.loads(text), name


def test_config_map_is_valid_agentwire_settings(manifests: list[dict[str, Any]]) -> None:
    (cm,) = [c for c in of_kind(manifests, "ConfigMap") if "agentwire.yaml" in c.get("data", {})]
    config = yaml.safe_load(cm["data"]["agentwire.yaml"])
    settings = Settings(**config)
    assert settings.streaming.buffer_size == config["streaming"]["buffer_size"]


def test_schema_config_keys_exist_in_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    sections = schema["properties"]["config"]["properties"]
    for section, node in sections.items():
        assert section in Settings.model_fields, f"config.{section} is not a settings section"
        model = Settings.model_fields[section].annotation
        for key in node["properties"]:
            assert key in model.model_fields, f"config.{section}.{key} is not a setting"  # type: ignore[union-attr]


def test_api_keys_secret(manifests: list[dict[str, Any]], case: str) -> None:
    secrets = {s["metadata"]["name"]: s for s in of_kind(manifests, "Secret")}
    keys_doc = yaml.safe_load(secrets[f"{RELEASE}-agentwire-keys"]["stringData"]["keys.yaml"])
    entries = {k["name"]: k for k in keys_doc["keys"]}
    for entry in entries.values():
        assert set(entry) == {"name", "tenant", "sha256"}
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    if case == "everything":
        assert entries["ci"] == {"name": "ci", "tenant": "acme", "sha256": hashlib.sha256(b"ci-key").hexdigest()}
    # The helm-test key is generated, stored in plain text for the test pod, and accepted by hash.
    test_key = base64.b64decode(secrets[f"{RELEASE}-agentwire-test-key"]["data"]["api-key"]).decode()
    assert len(test_key) >= 32
    assert entries["helm-test"]["sha256"] == hashlib.sha256(test_key.encode()).hexdigest()
    token = base64.b64decode(secrets[f"{RELEASE}-agentwire-stream-token"]["data"]["stream-token-secret"])
    assert len(token) >= 32


def test_helm_test_hook(manifests: list[dict[str, Any]]) -> None:
    (pod,) = of_kind(manifests, "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    # `helm uninstall` does not delete hooks: a succeeded test pod must go by itself, its log printed first.
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    assert set(annotations["helm.sh/hook-output-log-policy"].split(",")) == {"hook-succeeded", "hook-failed"}
    (container,) = pod["spec"]["containers"]
    assert re.fullmatch(r"(docker\.io/)?curlimages/curl:\d+\.\d+\.\d+", container["image"]), "curl pinned by tag"
    script = "\n".join(container["args"])
    assert "/api/v1/tasks" in script and "/api/v1/stream/sse" in script and "^event: done" in script
    env = env_of(container)
    services = {s["metadata"]["name"] for s in of_kind(manifests, "Service")}
    for var in ("INGEST_URL", "EDGE_URL"):
        assert urlparse(env[var]).hostname in services


# --- per-case expectations -----------------------------------------------------------------------


def test_monitoring_resources_follow_their_switches(manifests: list[dict[str, Any]], case: str) -> None:
    enabled = case in ("production", "everything")
    assert bool(of_kind(manifests, "ServiceMonitor")) is enabled
    assert bool(of_kind(manifests, "PrometheusRule")) is enabled


def test_monitoring_resources_need_the_operator_crds(tmp_path: Path) -> None:
    docs = render("production", tmp_path, operator=False)
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "PrometheusRule")
    assert len(deployments(docs)) == len(COMPONENTS), "the rest of the release is unaffected"


def test_service_monitors(tmp_path: Path) -> None:
    docs = render("everything", tmp_path)
    services = of_kind(docs, "Service")
    monitors = of_kind(docs, "ServiceMonitor")
    assert len(monitors) == len(COMPONENTS)
    for sm in monitors:
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = sm["spec"]
        assert spec["namespaceSelector"]["matchNames"] == [NAMESPACE]
        (svc,) = [s for s in services if matches(spec["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert spec["jobLabel"] in svc["metadata"]["labels"]
        assert re.fullmatch(r"agentwire-[a-z]+", svc["metadata"]["labels"][spec["jobLabel"]])
        (endpoint,) = spec["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])


def test_prometheus_rule_ships_deploy_prometheus_alerts(tmp_path: Path) -> None:
    (rule,) = of_kind(render("everything", tmp_path), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert groups == yaml.safe_load(ALERTS.read_text())["groups"]
    for group in groups:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert r["alert"] and r["expr"] and "severity" in r["labels"]


def test_autoscalers(tmp_path: Path) -> None:
    docs = render("everything", tmp_path)
    hpas = {h["metadata"]["labels"]["app.kubernetes.io/component"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert sorted(hpas) == ["edge", "runner"]
    deps = deployments(docs)
    for component, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == deps[component]["metadata"]["name"]
        assert "replicas" not in deps[component]["spec"], "the HPA owns the replica count"
        kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
        assert kinds["Resource"]["resource"]["name"] == "cpu"
    pods_metric = {m["type"]: m for m in hpas["edge"]["spec"]["metrics"]}["Pods"]["pods"]
    assert pods_metric["metric"]["name"] == "agentwire_edge_connections_open"
    assert "Pods" not in {m["type"] for m in hpas["runner"]["spec"]["metrics"]}


def test_production_values(tmp_path: Path) -> None:
    docs = render("production", tmp_path)
    deps = deployments(docs)
    hpas = {h["metadata"]["labels"]["app.kubernetes.io/component"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas == {"edge", "runner"}
    assert deps["ingest"]["spec"]["replicas"] >= 3
    assert deps["processor"]["spec"]["replicas"] >= 2
    (ingress,) = of_kind(docs, "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    for dep in deps.values():
        resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    env = env_of(deps["runner"]["spec"]["template"]["spec"]["containers"][0])
    assert int(env["AGENTWIRE_KAFKA__REPLICATION_FACTOR"]) >= 3


def test_strimzi_topics_are_the_topics_the_services_use(tmp_path: Path) -> None:
    strimzi = CHART / "values-strimzi.yaml"
    proc = helm("template", RELEASE, CHART, "-n", NAMESPACE, "-f", CHART / "values-production.yaml", "-f", strimzi,
                "--set", f"store.dsn={STORE_DSN}")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
    production = yaml.safe_load((CHART / "values-production.yaml").read_text())["kafka"]
    kafka = production | yaml.safe_load(strimzi.read_text())["kafka"]
    settings = Settings(kafka={"bootstrap_servers": kafka["bootstrapServers"], "partitions": kafka["partitions"],
                               "replication_factor": kafka["replicationFactor"],
                               "retention_hours": kafka["retentionHours"]})
    expected = topic_configs(settings.kafka)
    processor = Processor(settings)  # the faust tables' changelogs (nothing connects before start)
    for table in (processor.rows_table, processor.tasks_table):
        assert table.changelog_topic.partitions == kafka["partitions"]
        expected[table.changelog_topic_name] = {"cleanup.policy": "compact"}
    assert set(topics) == set(expected)
    for name, topic in topics.items():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["namespace"] == kafka["strimziTopics"]["namespace"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["strimziTopics"]["cluster"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", topic["metadata"]["name"])
        spec = topic["spec"]
        assert (spec["partitions"], spec["replicas"]) == (kafka["partitions"], kafka["replicationFactor"])
        assert spec["config"] == expected[name], name
    env = env_of(deployments(docs)["runner"]["spec"]["template"]["spec"]["containers"][0])
    assert env["AGENTWIRE_KAFKA__BOOTSTRAP_SERVERS"] == kafka["bootstrapServers"]


def test_strimzi_topics_need_the_cluster_name(tmp_path: Path) -> None:
    proc = helm("template", RELEASE, CHART, *value_args("default", tmp_path),
                "--set", "kafka.strimziTopics.enabled=true", check=False)
    assert proc.returncode != 0 and "kafka.strimziTopics.cluster" in proc.stderr


def test_existing_secrets_replace_the_generated_ones(tmp_path: Path) -> None:
    docs = render(
        "default", tmp_path,
        "--set", "auth.existingSecret=my-keys", "--set", "auth.existingSecretKey=k.yaml",
        "--set", "auth.streamTokenSecret.existingSecret=my-token",
        "--set", "tests.apiKey.existingSecret=my-test-key",
        "--set", "store.existingSecret=my-store",
    )
    assert of_kind(docs, "Secret") == []
    edge = deployments(docs)["edge"]["spec"]["template"]["spec"]
    (volume,) = [v for v in edge["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "my-keys"
    assert volume["secret"]["items"] == [{"key": "k.yaml", "path": "keys.yaml"}]
    assert env_of(edge["containers"][0])["AGENTWIRE_AUTH__STREAM_TOKEN_SECRET"]["secretKeyRef"]["name"] == "my-token"
    (pod,) = of_kind(docs, "Pod")
    assert env_of(pod["spec"]["containers"][0])["API_KEY"]["secretKeyRef"]["name"] == "my-test-key"
    assert env_of(edge["containers"][0])["AGENTWIRE_STORE__DSN"]["secretKeyRef"]["name"] == "my-store"


def test_store_dsn_and_lifetimes_reach_ingest_and_edge(tmp_path: Path) -> None:
    docs = render("default", tmp_path, "--set", "retention.tasksDays=3")
    (secret,) = [d for d in of_kind(docs, "Secret") if d["metadata"]["name"].endswith("-store")]
    assert secret["stringData"]["dsn"] == STORE_DSN
    deps = deployments(docs)
    for name in ("ingest", "edge"):
        env = env_of(deps[name]["spec"]["template"]["spec"]["containers"][0])
        assert env["AGENTWIRE_STORE__DSN"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "dsn"}
        assert env["AGENTWIRE_RETENTION__TASKS_DAYS"] == "3"
        assert float(env["AGENTWIRE_KAFKA__RETENTION_HOURS"]) >= 3 * 24
    assert "AGENTWIRE_STORE__DSN" not in env_of(deps["runner"]["spec"]["template"]["spec"]["containers"][0])
    proc = helm("template", RELEASE, CHART, *value_args("default", tmp_path), "--set", "store.dsn=", check=False)
    assert proc.returncode != 0 and "store.dsn" in proc.stderr


def test_processor_tables_on_a_volume_of_its_own(tmp_path: Path) -> None:
    """A StatefulSet with a claim per worker (restarts and rollouts stay warm), or a Deployment with an emptyDir."""
    docs = render("default", tmp_path, "--set", "processor.persistence.size=9Gi",
                  "--set", "processor.persistence.storageClassName=fast")
    processor = deployments(docs)["processor"]
    assert processor["kind"] == "StatefulSet" and processor["spec"]["podManagementPolicy"] == "Parallel"
    headless = named(docs, "Service", processor["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    (claim,) = processor["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "9Gi" and claim["spec"]["storageClassName"] == "fast"
    pod = processor["spec"]["template"]["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}  # the claim, not an emptyDir
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "data")
    assert env_of(pod["containers"][0])["AGENTWIRE_PROCESSOR__DATA_DIR"] == mount["mountPath"]

    docs = render("default", tmp_path, "--set", "processor.persistence.enabled=false")
    processor = deployments(docs)["processor"]
    assert processor["kind"] == "Deployment"
    (data,) = [v for v in processor["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert "emptyDir" in data


def test_notes_render(tmp_path: Path) -> None:
    # `helm install --dry-run` would contact a cluster; render NOTES.txt through `tpl` in a copy instead.
    chart = tmp_path / "agentwire"
    shutil.copytree(CHART, chart)  # follows the dashboards/ and files/ symlinks
    (chart / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        "data:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | quote }}\n"
    )
    proc = helm("template", RELEASE, chart, "--namespace", NAMESPACE, *value_args("default", tmp_path),
                "--show-only", "templates/zz-notes.yaml")
    notes = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert f"helm test {RELEASE} -n {NAMESPACE}\n" in notes
    assert "/api/v1/stream/sse" in notes
    assert BOOTSTRAP in notes


# --- the helm test script, run here against a stub of the API ------------------------------------


class _StubApi(http.server.BaseHTTPRequestHandler):
    key = "k" * 40
    end_with_done = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/api/v1/tasks" or self.headers.get("X-API-Key") != self.key or not body.get("query"):
            self.send_response(401)
            self.end_headers()
            return
        payload = json.dumps({"task_id": "task-1", "workflow_id": "task-1", "status": "STATUS_CODE_OK"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/api/v1/stream/sse" or parse_qs(url.query).get("workflow_id") != ["task-1"]:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        frames = [": connected to workflow task-1\n\n",
                  'id: 0-1\nevent: WORKFLOW_STARTED\ndata: {"seq": 1}\n\n',
                  'id: 0-2\nevent: WORKFLOW_COMPLETED\ndata: {"seq": 2}\n\n']
        if self.end_with_done:
            frames.append("id: 0-3\nevent: done\ndata: [DONE]\n\n")
        self.wfile.write("".join(frames).encode())


@pytest.fixture
def stub_api() -> Iterator[tuple[str, type[_StubApi]]]:
    handler = type("Handler", (_StubApi,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("ends", [True, False], ids=["stream-ends-with-done", "stream-cut-short"])
def test_helm_test_script_against_a_stub(
    ends: bool, stub_api: tuple[str, type[_StubApi]], tmp_path: Path
) -> None:
    curl, sh = shutil.which("curl"), shutil.which("sh")
    assert curl and sh, "curl and sh are needed (make system-deps installs curl)"
    base, handler = stub_api
    handler.end_with_done = ends
    (pod,) = of_kind(render("default", tmp_path), "Pod")
    container = pod["spec"]["containers"][0]
    script = container["args"][0].replace("/tmp/", f"{tmp_path}/")
    env = {k: v for k, v in env_of(container).items() if isinstance(v, str)}
    env.update(INGEST_URL=base, EDGE_URL=base, API_KEY=handler.key, TIMEOUT_S="20", PATH="/usr/bin:/bin")
    proc = subprocess.run([sh, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)
    if ends:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "ended with event: done" in proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "did not reach event: done" in proc.stderr
