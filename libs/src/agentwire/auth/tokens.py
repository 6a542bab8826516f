"""Short-lived stream tokens: HMAC-SHA256 over tenant, workflow and expiry.

A browser's EventSource cannot send headers, so it would have to put a long-lived API key in a
URL. Instead it asks ``POST /api/v1/stream/token`` for a token that opens one workflow's stream
for a few minutes. Token format (URL-safe, no padding)::

    v1.<base64url(tenant)>.<expiry unix seconds>.<base64url(hmac_sha256(secret, tenant \\n workflow \\n expiry))>

The workflow id is bound by the MAC but not carried: the token only verifies for the workflow
named in the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

PREFIX = "v1"

# One random secret per process when none is configured: tokens then verify only on the pod
# that issued them, so multi-pod deployments must set auth.stream_token_secret.
_PROCESS_SECRET = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class StreamTokens:
    """Issues and verifies stream tokens with one secret."""

    secret: bytes
    ttl_s: int

    @classmethod
    def with_secret(cls, secret: str, ttl_s: int) -> StreamTokens:
        """Tokens signed with ``secret``, or with this process's random secret if it is empty."""
        return cls(secret.encode() if secret else _PROCESS_SECRET, ttl_s)

    def issue(self, tenant: str, workflow_id: str, now: float | None = None) -> tuple[str, int]:
        """A token for ``tenant`` to stream ``workflow_id``, and its expiry (unix seconds)."""
        expires = int(now if now is not None else time.time()) + self.ttl_s
        token = f"{PREFIX}.{_b64(tenant.encode())}.{expires}.{self._sign(tenant, workflow_id, expires)}"
        return token, expires

    def verify(self, token: str, workflow_id: str, now: float | None = None) -> str | None:
        """The tenant of a valid, unexpired token for ``workflow_id``; None otherwise."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
            return None
        try:
            tenant = _unb64(parts[1]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        expires = int(parts[2])
        if not hmac.compare_digest(parts[3], self._sign(tenant, workflow_id, expires)):
            return None
        if expires < (now if now is not None else time.time()):
            return None
        return tenant

    @staticmethod
    def looks_like_token(value: str) -> bool:
        """Whether ``value`` has the shape of a stream token (rather than an API key)."""
        return value.startswith(PREFIX + ".") and value.count(".") == 3

    def _sign(self, tenant: str, workflow_id: str, expires: int) -> str:
        message = f"{tenant}\n{workflow_id}\n{expires}".encode()
        return _b64(hmac.new(self.secret, message, hashlib.sha256).digest())
