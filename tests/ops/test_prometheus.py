"""A real Prometheus scrapes the running stack; every dashboard panel's query must return data.

Needs Debian's ``prometheus`` package (``prometheus`` and ``promtool`` on PATH): ``make system-deps``.
The stack (tests/conftest.py) runs the gateway (ingest and edge on one port), the runner and the
processor; the gateway is scraped as ``agentwire-gateway``, which the dashboards' process panels
accept alongside ``agentwire-ingest`` and ``agentwire-edge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from websockets.sync.client import connect

from tests.support.sse import read_stream
from tests.support.stack import ROOT, Stack, free_port
from tests.support.wait import eventually

GRAFANA = ROOT / "deploy" / "grafana"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
TEMPLATE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
DEADLINE_S = 90.0


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `make system-deps` (Debian package `prometheus`)")
    return path


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        return list(self.get("/api/v1/query", query=expr)["result"])


def panel_queries() -> list[tuple[str, str, str]]:
    """``(dashboard file, panel title, expr)`` of every target of every panel, variables substituted."""
    found = []
    for path in sorted(GRAFANA.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{path.name} / {panel['title']}: unsubstituted variable in {expr}"
                found.append((path.name, panel["title"], expr))
    return found


def scrape_config(stack: Stack, rules: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this stack's targets, a 1 s interval and absolute rule paths."""
    config = yaml.safe_load(TEMPLATE.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    config["scrape_configs"] = [
        {"job_name": f"agentwire-{name}",
         "static_configs": [{"targets": [service.health_url.removeprefix("http://").removesuffix("/health")]}]}
        for name, service in stack.services.items()
    ]
    return config


def run_traffic(stack: Stack) -> None:
    """Tasks streamed over SSE and WS, a 404 and a 400, and one malformed record for the dead-letter counters."""
    base = stack.base_url
    ids = []
    for n in range(3):
        response = httpx.post(f"{base}/api/v1/tasks", json={"query": f"ops {n}", "context": {"speed": 40}}, timeout=10)
        assert response.status_code == 200, response.text
        ids.append(response.json()["workflow_id"])
    assert httpx.get(f"{base}/api/v1/tasks/task-does-not-exist", timeout=10).status_code == 404
    assert httpx.get(f"{base}/api/v1/stream/sse", timeout=10).status_code == 400  # no workflow_id
    frames, _ = read_stream(base, {"workflow_id": ids[0]})  # returns when the stream has ended
    assert frames
    ws_url = base.replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={ids[1]}"
    with connect(ws_url, open_timeout=10) as ws:
        while json.loads(ws.recv(timeout=60))["type"] != "STREAM_END":
            pass
    asyncio.run(produce_malformed(stack))


async def produce_malformed(stack: Stack) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(f"{stack.prefix}.tasks", key=b"ops-malformed", value=b"{not json")
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    executable = binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = workdir / "alerts.yml"
    shutil.copy(ALERTS, rules)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(stack, rules)))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [executable, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        server = Prometheus(f"http://127.0.0.1:{port}")
        run_traffic(stack)
        wait_for_targets(server, process, workdir / "prometheus.log", len(stack.services))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_targets(server: Prometheus, process: subprocess.Popen[bytes], log: Path, count: int) -> None:
    def all_up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited ({process.returncode}):\n{log.read_text(errors='replace')}")
        try:
            return len(server.query('up{job=~"agentwire-.*"} == 1')) == count
        except httpx.HTTPError:
            return False

    eventually(all_up, DEADLINE_S, f"prometheus scraping all {count} targets")


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([binary("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_alert_rules(prometheus: Prometheus) -> None:
    wanted = yaml.safe_load(ALERTS.read_text())["groups"]
    groups = prometheus.get("/api/v1/rules")["groups"]
    loaded = {group["name"]: {rule["name"] for rule in group["rules"]} for group in groups}
    assert loaded == {group["name"]: {rule["alert"] for rule in group["rules"]} for group in wanted}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] in {"ok", "unknown"}, rule


def test_every_dashboard_panel_query_returns_data(prometheus: Prometheus) -> None:
    queries = panel_queries()
    assert len({name for name, _, _ in queries}) >= 5
    missing = queries

    def all_have_data() -> bool:
        nonlocal missing
        missing = [(name, title, expr) for name, title, expr in missing if not prometheus.query(expr)]
        return not missing

    with contextlib.suppress(AssertionError):
        eventually(all_have_data, DEADLINE_S, "every panel query returning data")
    assert not missing, "panels without data:\n" + "\n".join(f"{n} / {t}: {e}" for n, t, e in missing)


def test_http_metrics_are_labelled_by_route_template(prometheus: Prometheus) -> None:
    match = '{__name__=~"agentwire_(ingest|edge)_http_requests_total"}'
    series = prometheus.get("/api/v1/series", **{"match[]": match})
    routes = {(s["__name__"], s["route"], s["status"]) for s in series}
    assert ("agentwire_ingest_http_requests_total", "/api/v1/tasks/{task_id}", "404") in routes
    assert ("agentwire_edge_http_requests_total", "/api/v1/stream/sse", "200") in routes
    assert not [r for r in routes if "task-" in r[1]], routes
