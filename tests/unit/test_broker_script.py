"""deploy/kafka/broker.py's pure parts."""

from __future__ import annotations

import uuid

import pytest

from tests.support.broker import broker_script


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """One random id in 64 did, and StorageTool read it as an option: the broker failed to start."""
    script = broker_script()
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(script.uuid, "uuid4", lambda: next(draws))
    value = script.new_cluster_id()
    assert value == "EAAAAAAAAAAAAAAAAAAAAA" and len(value) == 22
