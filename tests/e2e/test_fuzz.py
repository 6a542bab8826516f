"""The short fuzzing profile: schemathesis against the served OpenAPI document, through the gateway
with auth off and through the one with API keys (``make fuzz`` is the full profile).

The full profile (``make fuzz``, tests/fuzz/run.py) sends well over 1,000 requests; this one a few
hundred per gateway, enough to catch a route or a document that drifted. Either way: no 5xx, every
response as documented, schema-valid requests accepted, invalid ones rejected, and with auth on no
request without a valid key accepted.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import AuthStack
from tests.fuzz.harness import fuzz
from tests.support.stack import Stack

SHORT_EXAMPLES = 4
SEED = 15  # a fixed seed: the short profile is the same requests every run


def test_fuzz_auth_off(stack: Stack, tmp_path: Path) -> None:
    result = fuzz(stack.base_url, tmp_path, label="auth-off", max_examples=SHORT_EXAMPLES, api_key=None, seed=SEED)
    assert result.generated >= 100, result.summary()
    assert result.clean, result.explain()


def test_fuzz_auth_on(auth_stack: AuthStack, tmp_path: Path) -> None:
    result = fuzz(auth_stack.base_url, tmp_path, label="auth-on", max_examples=SHORT_EXAMPLES,
                  api_key=auth_stack.key_fuzz, seed=SEED)
    assert result.generated >= 100, result.summary()
    assert result.clean, result.explain()
