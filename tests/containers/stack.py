"""The whole system as containers, through testcontainers: one network, Kafka, PostgreSQL (the query store)
and every service image.

PostgreSQL starts first; the services start next, pointed at a Kafka that is not there yet, so the stack can
record what their probes say before Kafka answers; then Kafka starts under the network alias they use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import httpx
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

from tests.support.wait import eventually

KAFKA_ALIAS = "kafka"
POSTGRES_ALIAS = "postgres"
POSTGRES_DSN = f"postgresql://agentwire:agentwire@{POSTGRES_ALIAS}:5432/agentwire"
STARTUP_S = 120
# (port the service listens on, the setting that names it)
SERVICES = {
    "ingest": (8080, "AGENTWIRE_HTTP__PORT"),
    "edge": (8080, "AGENTWIRE_HTTP__PORT"),
    "runner": (9101, "AGENTWIRE_RUNNER__OPS_PORT"),
    "processor": (9102, "AGENTWIRE_PROCESSOR__OPS_PORT"),
    "gateway": (8080, "AGENTWIRE_HTTP__PORT"),
}


@dataclass
class ContainerStack:
    images: dict[str, str]
    label: str = field(default_factory=lambda: f"agentwire-test-{uuid.uuid4().hex[:8]}")
    containers: dict[str, DockerContainer] = field(default_factory=dict)
    probes_before_kafka: dict[str, tuple[int, int]] = field(default_factory=dict)  # service: (health, readiness)

    def url(self, service: str) -> str:
        container = self.containers[service]
        port = container.get_exposed_port(SERVICES[service][0])
        return f"http://{container.get_container_host_ip()}:{port}"

    @property
    def base_url(self) -> str:
        """The gateway: the whole public API on one port, where the Shannon SDK points."""
        return self.url("gateway")

    def probe(self, service: str, path: str) -> int:
        try:
            return httpx.get(f"{self.url(service)}{path}", timeout=3).status_code
        except httpx.HTTPError:
            return 0

    def ready(self, service: str) -> bool:
        return self.probe(service, "/readiness") == 200

    def wait_ready(self, *services: str, timeout: float = STARTUP_S) -> None:
        for service in services or tuple(SERVICES):
            eventually(lambda s=service: self.ready(s), timeout, f"{service} container ready")

    def kill_and_start(self, service: str) -> None:
        """SIGKILL the container, start the same container again, wait until it is ready."""
        wrapped = self.containers[service].get_wrapped_container()
        wrapped.kill()
        wrapped.wait()
        wrapped.start()
        self.wait_ready(service)

    def logs(self, lines: int = 40) -> str:
        out = []
        for name, container in self.containers.items():
            try:
                stdout, stderr = container.get_logs()
            except Exception as exc:  # a container that is gone has no logs to show
                out.append(f"--- {name}: no logs ({exc})")
                continue
            text = (stdout + stderr).decode(errors="replace").splitlines()[-lines:]
            out.append(f"--- {name} ({container.image})\n" + "\n".join(text))
        return "\n".join(out)

    def service_container(self, service: str, network: Network) -> DockerContainer:
        port, setting = SERVICES[service]
        container = (
            DockerContainer(self.images[service], labels={"io.agentwire.test": self.label})
            .with_network(network)
            .with_network_aliases(service)
            .with_exposed_ports(port)
            .with_envs(
                ENVIRONMENT="test",
                GATEWAY_SKIP_AUTH="1",
                AGENTWIRE_KAFKA__BOOTSTRAP_SERVERS=f"{KAFKA_ALIAS}:9092",
                AGENTWIRE_KAFKA__PARTITIONS="12",
                AGENTWIRE_KAFKA__REPLICATION_FACTOR="1",
                AGENTWIRE_STORE__DSN=POSTGRES_DSN,
            )
            .with_env(setting, str(port))
            .waiting_for(HttpWaitStrategy(port, "/health").for_status_code(200).with_startup_timeout(STARTUP_S))
        )
        return container

    def kafka_container(self, network: Network) -> DockerContainer:
        return (
            DockerContainer(self.images["kafka"], labels={"io.agentwire.test": self.label})
            .with_network(network)
            .with_network_aliases(KAFKA_ALIAS)
            .with_env("KAFKA_ADVERTISED_HOST", KAFKA_ALIAS)
            .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(STARTUP_S))
        )

    def postgres_container(self, network: Network) -> DockerContainer:
        return (
            DockerContainer(self.images["postgres"], labels={"io.agentwire.test": self.label})
            .with_network(network)
            .with_network_aliases(POSTGRES_ALIAS)
            .with_envs(POSTGRES_USER="agentwire", POSTGRES_PASSWORD="agentwire", POSTGRES_DB="agentwire")
            .waiting_for(LogMessageWaitStrategy("ready to accept connections").with_startup_timeout(STARTUP_S))
        )

    @contextmanager
    def running(self) -> Iterator[ContainerStack]:
        with ExitStack() as stack:
            network = stack.enter_context(Network())
            self.containers["postgres"] = stack.enter_context(self.postgres_container(network))
            for service in SERVICES:
                self.containers[service] = stack.enter_context(self.service_container(service, network))
            self.probes_before_kafka = {
                service: (self.probe(service, "/health"), self.probe(service, "/readiness")) for service in SERVICES
            }
            self.containers["kafka"] = stack.enter_context(self.kafka_container(network))
            try:
                self.wait_ready()
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.logs()}") from None
            yield self
