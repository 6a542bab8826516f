"""Session fixtures: a real Kafka broker and the whole stack as processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import kafka_broker
from tests.support.stack import Stack

PARTITIONS = 12


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with kafka_broker(PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    running = Stack(kafka_bootstrap, workdir, partitions=PARTITIONS, extra_env={"GATEWAY_SKIP_AUTH": "1"})
    with running.running():
        yield running
