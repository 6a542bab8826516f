"""Errors of the Kafka plumbing.

    KafkaPlumbingError
    ├── TopicLayoutError     topics exist with the wrong partition count
    └── NotCaughtUp          a view could not reach the topic's end in time
"""


class KafkaPlumbingError(Exception):
    """Base of this library's errors."""


class TopicLayoutError(KafkaPlumbingError):
    """A topic exists with a partition count other than the configured one."""


class NotCaughtUp(KafkaPlumbingError):
    """A view did not reach the end offsets it waited for."""
