"""API-key authentication and tenancy, shared by ingest and edge.

    AuthError
    ├── Unauthorized         no credentials, or credentials that match no key (401)
    └── AuthConfigError      settings that must not start a service (bypass outside dev/test)
"""

from agentwire.auth.keys import (
    ANONYMOUS_TENANT,
    AuthConfigError,
    Authenticator,
    AuthError,
    Principal,
    Unauthorized,
    hash_key,
)
from agentwire.auth.tokens import StreamTokens

__all__ = [
    "ANONYMOUS_TENANT",
    "AuthConfigError",
    "AuthError",
    "Authenticator",
    "Principal",
    "StreamTokens",
    "Unauthorized",
    "hash_key",
]
