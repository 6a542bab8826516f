"""Errors of the Kafka plumbing, and which of Kafka's own mean "away for now".

    KafkaPlumbingError
    ├── TopicLayoutError     topics exist with the wrong partition count
    └── NotCaughtUp          a view could not reach the topic's end in time
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiokafka.errors import KafkaTimeoutError

log = logging.getLogger(__name__)


class KafkaPlumbingError(Exception):
    """Base of this library's errors."""


class TopicLayoutError(KafkaPlumbingError):
    """A topic exists with a partition count other than the configured one."""


class NotCaughtUp(KafkaPlumbingError):
    """A view did not reach the end offsets it waited for."""


RESEND_BACKOFF_S = 0.5
RESEND_BACKOFF_MAX_S = 10.0


def kafka_away(exc: BaseException) -> bool:
    """Whether a failed send is worth sending again: Kafka was unreachable, leaderless or slow.

    aiokafka fails a batch it could not deliver within the request timeout with a timeout or
    with the retriable error it kept getting; a record too large or a denied topic never succeeds.
    A wrapper raised from aiokafka's error (faust's ``ProducerSendError``) is judged by its cause.
    """
    if isinstance(exc, KafkaTimeoutError) or getattr(exc, "retriable", False):
        return True
    return exc.__cause__ is not None and kafka_away(exc.__cause__)


def backoff() -> Iterator[float]:
    """Waits between sends again: doubling from RESEND_BACKOFF_S up to RESEND_BACKOFF_MAX_S."""
    delay = RESEND_BACKOFF_S
    while True:
        yield delay
        delay = min(delay * 2, RESEND_BACKOFF_MAX_S)


async def delivered(send: Callable[[], Awaitable[Awaitable[Any]]], what: str,
                    on_retry: Callable[[], None] | None = None) -> Any:
    """Send (``send`` hands a record to a producer and returns its delivery) and wait until Kafka
    has it, sending again while Kafka is away; returns the delivery's result."""
    for delay in backoff():
        try:
            return await (await send())
        except Exception as exc:
            if not kafka_away(exc):
                raise
            log.warning("Kafka failed %s (%r); sending it again in %.1f s", what, exc, delay)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # backoff() never ends
