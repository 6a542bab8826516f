"""The compose stack comes up from the built images and answers: a task through the gateway, scraped by
Prometheus. podman-compose (pinned in requirements/dev.txt) on podman, `docker compose` on Docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.flows import check_stream
from tests.support.broker import ROOT
from tests.support.sse import Frame, parse
from tests.support.stack import free_port
from tests.support.wait import eventually

COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
DEV_KEY = {"X-API-Key": "dev-key-123"}  # deploy/compose/keys.yaml
PORTS = ("GATEWAY", "INGEST", "EDGE", "PROMETHEUS", "KAFKA", "GRAFANA")
JOBS = {"agentwire-ingest", "agentwire-edge", "agentwire-runner", "agentwire-processor"}


def compose_command(engine: Any) -> list[str]:
    docker = shutil.which("docker")
    if engine.kind == "docker" and docker and subprocess.run([docker, "compose", "version"],
                                                             capture_output=True).returncode == 0:
        return [docker, "compose"]
    return [str(Path(sys.executable).parent / "podman-compose")]


@dataclass
class Compose:
    command: list[str]
    env: dict[str, str]
    ports: dict[str, int]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def logs(self) -> str:
        result = self.run("logs", "--tail", "30", timeout=60)
        return (result.stdout + result.stderr)[-8000:]


@pytest.fixture(scope="module")
def compose(engine: Any, images: dict[str, str]) -> Iterator[Compose]:
    project = f"agentwire-smoke-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in PORTS}
    env = {**os.environ, **{f"AGENTWIRE_{name}_PORT": str(port) for name, port in ports.items()},
           "AGENTWIRE_IMAGE_TAG": images["gateway"].rsplit(":", 1)[1]}
    stack = Compose([*compose_command(engine), "-p", project, "-f", str(COMPOSE_FILE)], env, ports)
    try:
        started = stack.run("up", "-d")
        assert started.returncode == 0, f"compose up failed:\n{started.stdout[-4000:]}{started.stderr[-4000:]}"
        yield stack
    finally:
        stack.run("down", "-v")


@pytest.mark.timeout(600)  # includes compose up and down
def test_compose_stack_serves_a_task_and_prometheus_scrapes_it(compose: Compose) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"{compose.url('GATEWAY')}/readiness", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    eventually(ready, 180, "compose gateway ready")
    body = {"query": "Research AI trends", "context": {"speed": 20}}
    response = httpx.post(f"{compose.url('GATEWAY')}/api/v1/tasks", json=body, headers=DEV_KEY, timeout=10)
    assert response.status_code == 200, response.text
    frames: list[Frame] = []
    with httpx.stream("GET", f"{compose.url('GATEWAY')}/api/v1/stream/sse", headers=DEV_KEY, timeout=90,
                      params={"workflow_id": response.json()["workflow_id"]}) as stream:
        assert stream.status_code == 200
        frames = [item for item in parse(stream.iter_lines()) if isinstance(item, Frame)]
    check_stream(frames)

    def scraped() -> bool:
        try:
            targets = httpx.get(f"{compose.url('PROMETHEUS')}/api/v1/targets", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        up = {t["labels"]["job"] for t in targets["data"]["activeTargets"] if t["health"] == "up"}
        return JOBS <= up

    eventually(scraped, 90, "Prometheus scraping every service")
