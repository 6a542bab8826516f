"""A stack whose processor times out silent workflows within seconds (for the timeout tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack

FAST_TIMEOUT = {
    "GATEWAY_SKIP_AUTH": "1",
    "AGENTWIRE_PROCESSOR__WORKFLOW_TIMEOUT_S": "3",
    "AGENTWIRE_PROCESSOR__TIMEOUT_CHECK_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def fast_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(kafka_bootstrap, tmp_path_factory.mktemp("fast-stack"), extra_env=dict(FAST_TIMEOUT))
    with running.running():
        yield running
