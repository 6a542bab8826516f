"""Where the tests' Kafka broker comes from: a given address, testcontainers, or our own script."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from tests.support.scripts import ROOT, load_script

__all__ = ["ROOT", "broker_script", "docker_engine_up", "kafka_broker"]


def broker_script() -> ModuleType:
    return load_script("deploy/kafka/broker.py", "agentwire_broker")


def docker_engine_up() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


@contextmanager
def kafka_broker(partitions: int) -> Iterator[str]:
    """Yield a bootstrap address of a real Apache Kafka broker; fail if there is none."""
    external = os.environ.get("AGENTWIRE_TEST_KAFKA")
    if external:
        yield external
        return
    if os.environ.get("AGENTWIRE_TEST_USE_DOCKER") == "1" and docker_engine_up():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    script = broker_script()
    with tempfile.TemporaryDirectory(prefix="agentwire-kafka-") as data_dir:
        try:
            broker = script.start(Path(data_dir), partitions=partitions, timeout=120.0)
        except Exception as exc:
            raise RuntimeError(
                "No Kafka broker for the tests: set AGENTWIRE_TEST_KAFKA=host:port, or let "
                f"deploy/kafka/broker.py start one (it failed: {exc}); see deploy/kafka/README.md"
            ) from exc
        try:
            yield broker.bootstrap
        finally:
            script.stop(broker)
