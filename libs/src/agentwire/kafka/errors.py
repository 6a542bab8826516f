"""Errors of the Kafka plumbing, and which of Kafka's own mean "away for now".

    KafkaPlumbingError
    ├── TopicLayoutError     topics exist with the wrong partition count
    └── NotCaughtUp          a view could not reach the topic's end in time
"""

from aiokafka.errors import KafkaTimeoutError


class KafkaPlumbingError(Exception):
    """Base of this library's errors."""


class TopicLayoutError(KafkaPlumbingError):
    """A topic exists with a partition count other than the configured one."""


class NotCaughtUp(KafkaPlumbingError):
    """A view did not reach the end offsets it waited for."""


def kafka_away(exc: BaseException) -> bool:
    """Whether a failed send is worth sending again: Kafka was unreachable, leaderless or slow.

    aiokafka fails a batch it could not deliver within the request timeout with a timeout or
    with the retriable error it kept getting; a record too large or a denied topic never succeeds.
    """
    return isinstance(exc, KafkaTimeoutError) or bool(getattr(exc, "retriable", False))
