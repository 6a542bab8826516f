"""API keys: stored as SHA-256 hashes, each bound to a tenant.

Keys file (YAML)::

    keys:
      - name: acme-ci          # a label for logs and metrics
        tenant: acme
        sha256: 5e884898da28...  # hex SHA-256 of the key; the key itself is never stored
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

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
    tenant: str
    key_name: str


def hash_key(key: str) -> str:
    """The hex SHA-256 under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Resolves a request's credentials to a Principal."""

    def __init__(self, keys: dict[str, Principal], *, skip: bool) -> None:
        self._keys = keys
        self._skip = skip

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
        return cls(keys, skip=settings.skip_auth)

    @property
    def skipped(self) -> bool:
        return self._skip

    def authenticate(self, request: web.Request, *, allow_query: bool = False) -> Principal:
        key = credential(request, allow_query=allow_query)
        if key is None:
            if self._skip:
                return Principal(ANONYMOUS_TENANT, "anonymous")
            raise Unauthorized("Missing API key")
        principal = self.resolve(key)
        if principal is None:
            if self._skip:
                return Principal(ANONYMOUS_TENANT, "anonymous")
            raise Unauthorized("Invalid API key")
        return principal

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
        return request.query.get("api_key") or None
    return None


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
        keys[digest] = Principal(tenant, str(entry.get("name", f"key-{index}")))
    return keys
