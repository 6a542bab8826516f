"""API keys: stored as SHA-256 hashes, each bound to a tenant.

Keys file (YAML)::

    keys:
      - name: acme-ci          # a label for logs and metrics
        tenant: acme
        sha256: 5e884898da28...  # hex SHA-256 of the key; the key itself is never stored
        per_minute: 120          # optional: this key's rate limit (default rate_limits.per_minute)

Generate a key and its hash::

    python -c "import secrets, hashlib; k = secrets.token_urlsafe(32); \\
        print(k, hashlib.sha256(k.encode()).hexdigest())"
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

from agentwire.auth.tokens import StreamTokens
from agentwire.service.settings import Settings

ANONYMOUS_TENANT = "default"


class AuthError(Exception):
    """Base of authentication errors."""


class Unauthorized(AuthError):
    """The request carries no valid credentials."""


class AuthConfigError(AuthError):
    """The auth settings are unsafe or unreadable."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, the key's label, and what identifies the key for rate limits."""

    tenant: str
    key_name: str
    key_id: str = ""
    per_minute: int | None = None


def hash_key(key: str) -> str:
    """The hex SHA-256 under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Resolves a request's credentials to a Principal."""

    def __init__(self, keys: dict[str, Principal], *, skip: bool, tokens: StreamTokens | None = None) -> None:
        self._keys = keys
        self._skip = skip
        self.tokens = tokens or StreamTokens.with_secret("", 300)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        if settings.skip_auth and not settings.is_dev:
            raise AuthConfigError(
                f"GATEWAY_SKIP_AUTH is refused when ENVIRONMENT={settings.environment!r}; "
                "it is allowed only in dev, development or test"
            )
        keys = load_keys(Path(settings.auth.keys_file)) if settings.auth.keys_file else {}
        if not keys and not settings.skip_auth:
            raise AuthConfigError("no API keys configured (auth.keys_file) and auth is not skipped")
        tokens = StreamTokens.with_secret(settings.auth.stream_token_secret, settings.auth.stream_token_ttl_s)
        return cls(keys, skip=settings.skip_auth, tokens=tokens)

    @property
    def skipped(self) -> bool:
        return self._skip

    def authenticate(self, request: web.Request, *, allow_query: bool = False) -> Principal:
        key = credential(request, allow_query=allow_query)
        if key is None:
            if self._skip:
                return Principal(ANONYMOUS_TENANT, "anonymous", "anonymous")
            raise Unauthorized("Missing API key")
        principal = self.resolve(key)
        if principal is None:
            if self._skip:
                return Principal(ANONYMOUS_TENANT, "anonymous", "anonymous")
            raise Unauthorized("Invalid API key")
        return principal

    def authenticate_stream(self, request: web.Request, workflow_id: str) -> Principal:
        """Credentials of a GET stream request: headers, ``?api_key=``, or ``?token=``.

        ``?token=`` holds a stream token for ``workflow_id`` (or, like ``api_key``, an API key).
        """
        token = request.query.get("token")
        if token and StreamTokens.looks_like_token(token) and not _has_header_credential(request):
            tenant = self.tokens.verify(token, workflow_id)
            if tenant is None:
                raise Unauthorized("Invalid or expired stream token")
            return Principal(tenant, "stream-token", key_id=f"token:{tenant}")
        return self.authenticate(request, allow_query=True)

    def resolve(self, key: str) -> Principal | None:
        digest = hash_key(key)
        for stored, principal in self._keys.items():
            if hmac.compare_digest(stored, digest):
                return principal
        return None


def credential(request: web.Request, *, allow_query: bool) -> str | None:
    """The API key a request carries: X-API-Key, Bearer, or (streams) ?api_key=."""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return request.query.get("api_key") or request.query.get("token") or None
    return None


def _has_header_credential(request: web.Request) -> bool:
    return bool(request.headers.get("X-API-Key") or request.headers.get("Authorization"))


def load_keys(path: Path) -> dict[str, Principal]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AuthConfigError(f"cannot read auth.keys_file {path}: {exc}") from exc
    entries = (document or {}).get("keys") or []
    keys: dict[str, Principal] = {}
    for index, entry in enumerate(entries):
        try:
            digest = str(entry["sha256"]).lower()
            tenant = str(entry["tenant"])
        except (KeyError, TypeError) as exc:
            raise AuthConfigError(f"{path}: keys[{index}] needs sha256 and tenant") from exc
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AuthConfigError(f"{path}: keys[{index}].sha256 is not a hex SHA-256")
        per_minute = entry.get("per_minute")
        if per_minute is not None and (not isinstance(per_minute, int) or per_minute < 1):
            raise AuthConfigError(f"{path}: keys[{index}].per_minute must be a positive integer")
        keys[digest] = Principal(tenant, str(entry.get("name", f"key-{index}")), digest[:16], per_minute)
    return keys
