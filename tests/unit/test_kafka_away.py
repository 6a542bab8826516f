"""Which failed sends are worth sending again (agentwire.kafka.errors; no broker needed)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaTimeoutError, LeaderNotAvailableError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from agentwire.kafka import delivered, kafka_away
from agentwire.kafka import errors as errors_module


def wrapped(cause: Exception) -> ProducerSendError:
    try:
        raise ProducerSendError("Error while sending") from cause
    except ProducerSendError as exc:
        return exc


def test_away_is_a_timeout_or_a_retriable_error_also_behind_faust_s_wrapper() -> None:
    assert kafka_away(KafkaTimeoutError()) and kafka_away(LeaderNotAvailableError())
    assert kafka_away(wrapped(KafkaTimeoutError()))
    assert not kafka_away(MessageSizeTooLargeError()) and not kafka_away(wrapped(MessageSizeTooLargeError()))
    assert not kafka_away(ValueError("bad record"))


async def test_delivered_sends_again_while_away_and_raises_what_never_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors_module, "RESEND_BACKOFF_S", 0.0)
    failures = [LeaderNotAvailableError(), wrapped(KafkaTimeoutError())]
    retries: list[None] = []

    async def send() -> object:
        async def delivery() -> str:
            if failures:
                raise failures.pop(0)
            return "offset 7"
        return delivery()

    assert await delivered(send, "a test record", lambda: retries.append(None)) == "offset 7"
    assert len(retries) == 2

    async def too_large() -> object:
        async def delivery() -> None:
            raise MessageSizeTooLargeError()
        return delivery()

    with pytest.raises(MessageSizeTooLargeError):
        await delivered(too_large, "a test record")
