"""A second gateway WITH auth on the shared stack's topics (same runner and processor).

Keys: tenant ``acme`` (KEY_A), tenant ``globex`` (KEY_B), and ``initech`` (KEY_LIMITED, 5 requests
a minute) for the rate-limit test. Its keepalive is short so that tests can see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from agentwire.auth import hash_key
from tests.support.stack import Stack

KEY_A = "ak-acme-0123456789"
KEY_B = "ak-globex-0123456789"
KEY_LIMITED = "ak-initech-0123456789"
KEY_FUZZ = "ak-fuzz-0123456789"  # its own tenant and no practical rate limit: the fuzzer sends hundreds
KEEPALIVE_S = 0.5


@dataclass
class AuthStack:
    base_url: str
    key_a: str = KEY_A
    key_b: str = KEY_B
    key_limited: str = KEY_LIMITED
    key_fuzz: str = KEY_FUZZ


@pytest.fixture(scope="session")
def auth_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    workdir = tmp_path_factory.mktemp("auth-stack")
    keys_file = workdir / "keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"name": "acme-ci", "tenant": "acme", "sha256": hash_key(KEY_A)},
                    {"name": "globex-ci", "tenant": "globex", "sha256": hash_key(KEY_B)},
                    {"name": "initech", "tenant": "initech", "sha256": hash_key(KEY_LIMITED), "per_minute": 5},
                    {"name": "fuzz", "tenant": "fuzz", "sha256": hash_key(KEY_FUZZ), "per_minute": 1_000_000},
                ]
            }
        )
    )
    gateway = Stack(
        stack.bootstrap,
        workdir,
        prefix=stack.prefix,
        partitions=stack.partitions,
        extra_env={
            "ENVIRONMENT": "test",
            "AGENTWIRE_AUTH__KEYS_FILE": str(keys_file),
            "AGENTWIRE_STREAMING__KEEPALIVE_S": str(KEEPALIVE_S),
            "AGENTWIRE_HTTP__CORS_ORIGINS": '["https://app.example"]',
        },
    )
    service = gateway.add("gateway", "agentwire-gateway")
    try:
        service.start()
        service.wait_ready()
        yield AuthStack(gateway.base_url)
    finally:
        gateway.stop()
