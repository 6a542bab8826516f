"""Unit tests of keys, the auth bypass rule, stream tokens, rate limits and CORS wiring (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentwire.auth import AuthConfigError, Authenticator, Principal, StreamTokens, hash_key
from agentwire.auth.keys import load_keys
from agentwire.ingest.ratelimit import RateLimiter
from agentwire.service.http import ApiError
from agentwire.service.settings import Settings


def _keys_file(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": [{"name": "ci", "tenant": "acme", "sha256": hash_key("k1"), **extra}]}))
    return path


@pytest.mark.parametrize("environment", ["production", "prod", "staging", ""])
def test_skip_auth_is_refused_outside_dev(environment: str) -> None:
    with pytest.raises(AuthConfigError, match="GATEWAY_SKIP_AUTH"):
        Authenticator.from_settings(Settings(environment=environment, skip_auth=True))


@pytest.mark.parametrize("environment", ["dev", "development", "test", "TEST"])
def test_skip_auth_is_allowed_in_dev(environment: str) -> None:
    assert Authenticator.from_settings(Settings(environment=environment, skip_auth=True)).skipped


def test_no_keys_and_no_skip_is_refused() -> None:
    with pytest.raises(AuthConfigError, match="no API keys"):
        Authenticator.from_settings(Settings(environment="production"))


def test_keys_are_resolved_by_hash(tmp_path: Path) -> None:
    settings = Settings(environment="production", auth={"keys_file": str(_keys_file(tmp_path, per_minute=7))})
    auth = Authenticator.from_settings(settings)
    principal = auth.resolve("k1")
    assert principal is not None and principal.tenant == "acme" and principal.per_minute == 7
    assert auth.resolve("k2") is None
    assert "k1" not in _keys_file(tmp_path).read_text()


@pytest.mark.parametrize("entry", [{"tenant": "a"}, {"sha256": "ab" * 32}, {"tenant": "a", "sha256": "xyz"},
                                   {"tenant": "a", "sha256": "ab" * 32, "per_minute": 0}])
def test_bad_key_entries_are_refused(tmp_path: Path, entry: dict[str, object]) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": [entry]}))
    with pytest.raises(AuthConfigError):
        load_keys(path)


def test_stream_token_round_trip_and_rejections() -> None:
    tokens = StreamTokens.with_secret("s3cret", ttl_s=60)
    token, expires = tokens.issue("acme", "task-1", now=1000)
    assert expires == 1060
    assert StreamTokens.looks_like_token(token)
    assert tokens.verify(token, "task-1", now=1059) == "acme"
    assert tokens.verify(token, "task-1", now=1061) is None  # expired
    assert tokens.verify(token, "task-2", now=1000) is None  # another workflow
    assert StreamTokens.with_secret("other", 60).verify(token, "task-1", now=1000) is None
    head, tenant, expiry, mac = token.split(".")
    assert tokens.verify(".".join([head, tenant, str(int(expiry) + 999), mac]), "task-1", now=1000) is None
    assert tokens.verify("v1.x.y.z", "task-1") is None
    assert tokens.verify("garbage", "task-1") is None


def test_unset_secret_is_random_per_process_but_stable() -> None:
    a, b = StreamTokens.with_secret("", 60), StreamTokens.with_secret("", 60)
    token, _ = a.issue("acme", "task-1")
    assert b.verify(token, "task-1") == "acme"
    assert len(a.secret) == 32


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    key = Principal("acme", "ci", "k1")
    assert [limiter.check(key)["X-RateLimit-Remaining"] for _ in range(3)] == ["2", "1", "0"]
    with pytest.raises(ApiError) as refused:
        limiter.check(key)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "20"
    assert limiter.check(Principal("acme", "other", "k2"))["X-RateLimit-Remaining"] == "2"
    now[0] = 20.0  # one token refilled (3 per minute)
    assert limiter.check(key)["X-RateLimit-Remaining"] == "0"
    assert RateLimiter(60).check(Principal("a", "b", "c", per_minute=100))["X-RateLimit-Limit"] == "100"


@pytest.mark.parametrize("service", ["ingest", "edge"])
def test_services_alone_answer_cors_preflights(service: str) -> None:
    from agentwire.edge.app import create_app as edge_app
    from agentwire.ingest.app import create_app as ingest_app

    app = (ingest_app if service == "ingest" else edge_app)(Settings(environment="test", skip_auth=True))
    resources = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    preflights = {r.resource.canonical for r in app.router.routes() if r.method == "OPTIONS" and r.resource}
    assert resources == preflights
