"""The agentwire message schema: pydantic models, orjson codec, topic names.

Imports no other agentwire library.
"""

from agentwire.schema.codec import DecodeError, decode, decode_as, dumps, encode, encode_many
from agentwire.schema.commands import (
    ApprovalDecision,
    CancelTask,
    ControlCommand,
    PauseTask,
    ResumeTask,
    SwarmMessage,
    TaskSubmitted,
)
from agentwire.schema.events import TERMINAL_TYPES, Event, EventType, InternalType, RawEvent, utcnow
from agentwire.schema.sessions import SessionMeta, session_key
from agentwire.schema.state import Approval, ControlState, TaskState, TaskStatus, Usage
from agentwire.schema.topics import DEFAULT_PARTITIONS, Topics

__all__ = [
    "DEFAULT_PARTITIONS",
    "TERMINAL_TYPES",
    "Approval",
    "ApprovalDecision",
    "CancelTask",
    "ControlCommand",
    "ControlState",
    "DecodeError",
    "Event",
    "EventType",
    "InternalType",
    "PauseTask",
    "RawEvent",
    "ResumeTask",
    "SessionMeta",
    "SwarmMessage",
    "TaskState",
    "TaskStatus",
    "TaskSubmitted",
    "Topics",
    "Usage",
    "decode",
    "decode_as",
    "dumps",
    "encode",
    "encode_many",
    "session_key",
    "utcnow",
]
