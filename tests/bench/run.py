"""``make bench``: every benchmark script in its own process, figures merged.

Runs ``python -m tests.bench.<name>`` for each script present, takes the JSON
object on the last line of its output, prints all figures merged as one JSON
object on the last line, and writes ``artifacts/bench.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# each a module of tests/bench with a main(); BENCH_SCRIPTS=edge,latency runs a subset
SCRIPTS = os.environ.get("BENCH_SCRIPTS", "edge,latency,processor,state,ingest,centrifugo").split(",")
TIMEOUT_S = {"centrifugo": 2700}  # 18 back-to-back pairs, six of them 30 s at a steady rate
TARGETS = {
    "ingest_submissions_per_s": "≥ 3,000/s",
    "ingest_submit_p99_ms": "≤ 20 ms",
    "late_join_10k_s_best": "≤ 1 s",
    "late_join_10k_s_first": "≤ 1 s",
    "clients_held": "≥ 10,000",
    "edge_rss_per_client_kb": "≤ 20 KB",
    "deliveries_per_s": "≥ 100,000/s",
    "e2e_latency_p50_ms": "≤ 10 ms",
    "e2e_latency_p99_ms": "≤ 50 ms",
    "deliveries_per_edge_cpu_s": "≥ 100,000/s",
    "processor_events_per_cpu_s": "≥ 5,000 (end to end, runner frames)",
    "processor_noop_ratio": "≥ 0.7",
    "e2e_100_latency_p50_ms": "≤ 8 ms",
    "list_p99_ms_at_1000k": "≤ 50 ms",
    "restart_to_ready_s_ingest_at_1000k": "≤ 10 s",
    "restart_to_ready_s_edge_at_1000k": "≤ 10 s",
    **{f"vs_{row}_{protocol}_cpu_ratio": "≥ 1.0 (ours / Centrifugo)"
       for row in ("broadcast", "spread", "steady") for protocol in ("sse", "ws")},
    **{f"vs_steady_{protocol}_p99_ratio": "≤ 1.0 (ours / Centrifugo)" for protocol in ("sse", "ws")},
}


def run_script(name: str) -> dict[str, object]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", f"tests.bench.{name}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT_S.get(name, 1800), env=os.environ.copy())
    lines = done.stdout.strip().splitlines()
    try:
        figures = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        figures = {}
    if done.returncode != 0 or not isinstance(figures, dict) or not figures:
        sys.stderr.write(done.stderr[-3000:])
        return {f"{name}_error": f"exit {done.returncode}"}
    figures[f"{name}_bench_s"] = round(time.monotonic() - started, 1)
    return figures


def table(figures: dict[str, object]) -> str:
    rows = ["| figure | value | target |", "|---|---|---|"]
    rows += [f"| {key} | {value} | {TARGETS.get(key, '')} |" for key, value in figures.items()]
    return "\n".join(rows) + "\n"


def main() -> None:
    figures: dict[str, object] = {}
    for name in SCRIPTS:
        if (ROOT / "tests" / "bench" / f"{name}.py").exists():
            figures.update(run_script(name))
    out = ROOT / "artifacts" / "bench.md"
    out.parent.mkdir(exist_ok=True)
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores shared by the broker, "
              "the services and the load generator; command: `make bench`.\n\n")
    out.write_text(header + table(figures))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
