"""``make fuzz``: the full fuzzing profile, through a gateway with auth off and one with auth on.

Starts its own broker and stack (processor, runner, a gateway with auth skipped, a second gateway
with API keys on the same topics), runs schemathesis with every check against each gateway's
served OpenAPI document, prints one JSON object on its last line and writes ``artifacts/fuzz.md``.
Exit 1 unless both runs are clean (0 responses 5xx, every response as documented) and at least
``FUZZ_MIN_REQUESTS`` [1000] requests were generated in all. Knobs: FUZZ_EXAMPLES [25] (per
operation and phase), FUZZ_SEED (default: random, printed).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from agentwire.auth import hash_key
from tests.fuzz.harness import FuzzResult, fuzz
from tests.support.broker import kafka_broker
from tests.support.stack import ROOT, Stack

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
MIN_REQUESTS = int(os.environ.get("FUZZ_MIN_REQUESTS", "1000"))
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None
KEY = "ak-fuzz-full-0123456789"


def log(message: str) -> None:
    sys.stderr.write(f"[fuzz {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def auth_gateway(stack: Stack, workdir: Path) -> Stack:
    keys = workdir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "fuzz", "tenant": "fuzz", "sha256": hash_key(KEY), "per_minute": 1_000_000}]}))
    gateway = Stack(stack.bootstrap, workdir / "auth", prefix=stack.prefix, partitions=stack.partitions,
                    extra_env={"AGENTWIRE_AUTH__KEYS_FILE": str(keys)})
    (workdir / "auth").mkdir()
    gateway.add("gateway", "agentwire-gateway").start()
    gateway.services["gateway"].wait_ready()
    return gateway


def write_table(results: list[FuzzResult], figures: dict[str, object]) -> None:
    out = ROOT / "artifacts" / "fuzz.md"
    out.parent.mkdir(exist_ok=True)
    rows = ["| gateway | requests | failures | errors | seconds |", "|---|---|---|---|---|"]
    rows += [f"| {r.label} | {r.generated} | {len(r.failures)} | {len(r.errors)} | {r.seconds:.0f} |" for r in results]
    out.write_text(f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} shared cores; command: `make fuzz` "
                   f"(schemathesis, --checks all, {EXAMPLES} examples per operation).\n\n" + "\n".join(rows)
                   + f"\n\n```json\n{json.dumps(figures)}\n```\n")


def main() -> int:
    results: list[FuzzResult] = []
    with tempfile.TemporaryDirectory(prefix="agentwire-fuzz-") as tmp, kafka_broker(12) as bootstrap:
        workdir = Path(tmp)
        stack = Stack(bootstrap, workdir, extra_env={
            "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "1000000"})
        with stack.running():
            secured = auth_gateway(stack, workdir)
            try:
                for label, base_url, key in (("auth-off", stack.base_url, None),
                                             ("auth-on", secured.base_url, KEY)):
                    log(f"fuzzing {label} ({EXAMPLES} examples per operation)")
                    result = fuzz(base_url, workdir, label=label, max_examples=EXAMPLES, api_key=key, seed=SEED)
                    log(f"{label}: {result.summary()}")
                    if not result.clean:
                        sys.stderr.write(result.explain())
                    results.append(result)
            finally:
                secured.stop()
    total = sum(r.generated for r in results)
    figures: dict[str, object] = {
        "fuzz_requests": total,
        "fuzz_failures": sum(len(r.failures) for r in results),
        "fuzz_errors": sum(len(r.errors) for r in results),
        "fuzz_runs": [r.summary() for r in results],
    }
    write_table(results, figures)
    print(json.dumps(figures))
    return 0 if all(r.clean for r in results) and total >= MIN_REQUESTS else 1


if __name__ == "__main__":
    sys.exit(main())
