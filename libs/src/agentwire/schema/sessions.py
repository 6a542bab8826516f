"""SessionMeta: what clients set on a session (its title, its deletion), on the compacted sessions topic.

A session itself is derived from its tasks (every task names one); only what cannot be derived
travels here, keyed by ``session_key(tenant, session_id)``: the newest record of a key is the
session's metadata, a tombstone (null value) forgets it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from agentwire.schema.events import utcnow


class SessionMeta(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant: str
    session_id: str
    title: str | None = None
    deleted_at: datetime | None = None  # set: the session is gone for its tenant (its tasks stay)
    updated_at: datetime = Field(default_factory=utcnow)


def session_key(tenant: str, session_id: str) -> bytes:
    """The record key of a session's metadata (tenants and session ids never hold a NUL)."""
    return f"{tenant}\x00{session_id}".encode()
