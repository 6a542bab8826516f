"""The whole agentwire stack as real processes, for integration and end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.support import postgres
from tests.support.run import run_sync
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def wait_ready(self, timeout: float = 90.0) -> None:
        try:
            eventually(self._ready, timeout, f"{self.name} ready")
        except AssertionError:
            raise RuntimeError(f"{self.name} not ready after {timeout}s; log:\n{self.tail()}") from None

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}); log:\n{self.tail()}")
        url = self.health_url.replace("/health", "/readiness")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
                return bool(response.status == 200)
        except OSError:
            return False

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    bootstrap: str
    workdir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 12
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    store_dsn: str | None = None  # default: a database named after the prefix on the tests' PostgreSQL

    @property
    def dsn(self) -> str:
        if self.store_dsn is None:
            self.store_dsn = postgres.database_dsn(self.prefix)
        return self.store_dsn

    @property
    def base_url(self) -> str:
        return self.services["gateway"].health_url.removesuffix("/health")

    def env(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTWIRE_")}
        env.update(
            {
                "AGENTWIRE_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "AGENTWIRE_KAFKA__TOPIC_PREFIX": self.prefix,
                "AGENTWIRE_KAFKA__PARTITIONS": str(self.partitions),
                "AGENTWIRE_STORE__DSN": self.dsn,
                "ENVIRONMENT": "test",
                "PYTHONUNBUFFERED": "1",
                # Every test shares one key (or the anonymous principal) for the whole session, and a fast
                # machine runs far more than the default 60 requests a minute through it; the limit itself
                # is tested with a key of its own (tests/e2e/test_api_auth.py::test_rate_limit_per_key).
                "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "1000000",
            }
        )
        env.update(self.extra_env)
        env.update(more)
        return env

    def add(self, name: str, script: str, **env: str) -> Service:
        port = free_port()
        env_vars = self.env(**env)
        if script in ("agentwire-gateway", "agentwire-ingest", "agentwire-edge"):
            env_vars["AGENTWIRE_HTTP__PORT"] = str(port)
        elif script == "agentwire-runner":
            env_vars["AGENTWIRE_RUNNER__OPS_PORT"] = str(port)
        elif script == "agentwire-processor":
            env_vars["AGENTWIRE_PROCESSOR__OPS_PORT"] = str(port)
            env_vars["AGENTWIRE_PROCESSOR__DATA_DIR"] = str(self.workdir / f"{name}-data")
        service = Service(
            name, [str(BIN / script)], env_vars, f"http://127.0.0.1:{port}/health", self.workdir / f"{name}.log"
        )
        self.services[name] = service
        return service

    def start_default(self) -> None:
        self.add("processor", "agentwire-processor")
        self.add("runner", "agentwire-runner")
        self.add("gateway", "agentwire-gateway")
        self.start_all()

    def start_all(self) -> None:
        """Start every service added so far, then wait until each is ready."""
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    @contextmanager
    def running(self) -> Iterator[Stack]:
        """Start the default services; on exit stop them and delete this stack's topics and database."""
        try:
            self.start_default()
            yield self
        finally:
            self.stop()
            self.delete_topics()
            postgres.drop_database(self.prefix)

    @contextmanager
    def serving(self, name: str, script: str) -> Iterator[Stack]:
        """Run one service alone; on exit stop it and delete this stack's topics."""
        try:
            self.add(name, script).start()
            self.services[name].wait_ready()
            yield self
        finally:
            self.stop()
            self.delete_topics()

    def delete_topics(self) -> None:
        """Delete every topic of this stack's prefix, so a long-lived broker does not pile them up.

        ``AGENTWIRE_TEST_KEEP_TOPICS=1`` keeps them (with pytest's ``--basetemp``, a failed run's broker
        data then stays for reading: which records a partition held, what each group committed).
        """
        if os.environ.get("AGENTWIRE_TEST_KEEP_TOPICS") == "1":
            return
        run_sync(_delete_prefixed(self.bootstrap, self.prefix))


async def _delete_prefixed(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
