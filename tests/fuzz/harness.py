"""Runs schemathesis (pinned in requirements/dev.txt) against a served OpenAPI document.

Every check is on (``--checks all``): no 5xx, status codes, content types, headers and bodies
as documented, schema-valid requests accepted, schema-invalid ones rejected, auth enforced when
it is on, and the stateful links from submit to the task routes. With auth off (dev/test only)
the ``ignored_auth`` check is left out: accepting requests without credentials is the setting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ST = Path(sys.executable).parent / "st"


@dataclass
class FuzzResult:
    """What one schemathesis run found."""

    label: str
    generated: int
    failures: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    exit_code: int
    seconds: float
    output: str

    @property
    def clean(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "requests": self.generated, "failures": len(self.failures),
                "errors": len(self.errors), "seconds": round(self.seconds, 1)}

    def explain(self) -> str:
        """The failures as schemathesis printed them (for an assertion message)."""
        start = self.output.find("FAILURES")
        start = self.output.find("ERRORS") if start < 0 else start
        return self.output[max(start, 0):][-8000:]


def fuzz(base_url: str, workdir: Path, *, label: str, max_examples: int, api_key: str | None,
         seed: int | None = None, timeout_s: float = 1800.0) -> FuzzResult:
    """One ``st run`` against ``base_url``; ``api_key`` None means the server skips auth."""
    report = workdir / f"schemathesis-{label}.json"
    command = [
        str(ST), "--config-file", str(HERE / "schemathesis.toml"), "--no-color", "run",
        f"{base_url}/openapi.json", "--checks", "all", "--max-examples", str(max_examples),
        # one worker: with two threads CPython 3.11's ast.parse (which hypothesis calls to describe its
        # filters) fails now and then with "AST constructor recursion depth mismatch" (cpython gh-106905)
        "--request-timeout", "15", "--workers", "1", "--generation-database", "none",
        "--report", "json", "--report-json-path", str(report),
    ]
    if api_key is None:
        command += ["--exclude-checks", "ignored_auth"]
    else:
        command += ["--header", f"X-API-Key: {api_key}"]
    if seed is not None:
        command += ["--seed", str(seed)]
    # run in the work dir: schemathesis keeps caches (.schemathesis/, .hypothesis/) in its current directory
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,  # noqa: S603
                          cwd=workdir)
    output = done.stdout + done.stderr
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {done.returncode}):\n{output[-4000:]}")
    data = json.loads(report.read_text())
    return FuzzResult(
        label=label,
        generated=int(data["test_cases"]["generated"]),
        failures=list(data.get("failures") or []),
        errors=list(data.get("errors") or []),
        exit_code=done.returncode,
        seconds=float(data.get("running_time") or 0.0),
        output=output,
    )
