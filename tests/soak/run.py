"""``make soak``: a steady load for minutes; the memory of every service must stay flat.

Starts its own broker and stack (processor, runner, gateway), then for SOAK_SECONDS [600] submits
SOAK_RATE [100] tasks/s (mode simple, each with an Idempotency-Key) and gives every task
SOAK_READERS [1] clients that read it to the end: SSE with Last-Event-ID resumes (a forced disconnect
with probability SOAK_RESUME_P [0.02] per event), or WebSocket for SOAK_WS_SHARE [0.1] of them.
SOAK_SPEED [0.35] paces the tasks: about SOAK_RATE × SOAK_READERS × a task's length (≈ 10 s) clients
read at once (≈ 1,000). The edge's recent-events cache is bounded at SOAK_CACHE_MB [16] MB (64 by
default) so that it fills within the warm-up.

Every 10 s it samples the RSS of each service, the clients reading and the tasks done. After the
warm-up (SOAK_WARMUP_S [120]) each service's RSS series is judged by its trend: the least-squares
slope over the rest of the run, projected over that span, must stay under max(10 % of the median,
SOAK_FLAT_MB [24] MB). Also 0 error responses, every stream complete and exact, and the load kept
up: the number of clients reading must not trend upwards after the warm-up (a growing backlog of
streams grows every service's memory, leak or not, so such a run judges nothing); every stream gets
SOAK_LAG_S [60] s past the end to finish. Prints one JSON object on its last line and
writes ``artifacts/soak.md`` with each series as a sparkline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.chaos.client import Tally
from tests.soak.clients import Counts, read_sse, read_ws
from tests.support import postgres
from tests.support.broker import kafka_broker
from tests.support.stack import ROOT, Stack

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RATE = float(os.environ.get("SOAK_RATE", "100"))
SPEED = float(os.environ.get("SOAK_SPEED", "0.35"))
RESUME_P = float(os.environ.get("SOAK_RESUME_P", "0.02"))
WS_SHARE = float(os.environ.get("SOAK_WS_SHARE", "0.1"))
READERS = int(os.environ.get("SOAK_READERS", "1"))
# the edge's recent-events cache fills up to its bound (64 MB by default) at the rate events come:
# a smaller bound is reached within the warm-up, so the judged window sees what is not bounded
CACHE_MB = os.environ.get("SOAK_CACHE_MB", "16")
WARMUP_S = float(os.environ.get("SOAK_WARMUP_S", "120"))
FLAT_MB = float(os.environ.get("SOAK_FLAT_MB", "24"))
LAG_S = float(os.environ.get("SOAK_LAG_S", "60"))
SAMPLE_S = 10.0
SERVICES = ("gateway", "processor", "runner")
BARS = "▁▂▃▄▅▆▇█"


def log(message: str) -> None:
    sys.stderr.write(f"[soak {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))] for v in values)


def trend(times: list[float], values: list[float]) -> float:
    """Least-squares slope (value units per second)."""
    if len(values) < 3:
        return 0.0
    return statistics.linear_regression(times, values).slope


@dataclass
class Soak:
    base_url: str
    pids: dict[str, int]
    counts: Counts = field(default_factory=Counts)
    tallies: list[Tally] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    reading: int = 0
    max_reading: int = 0
    submitted: int = 0
    done: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(15))

    async def client(self, http: aiohttp.ClientSession, i: int, deadline: float) -> None:
        body = {"query": f"soak task {i}", "mode": "simple", "context": {"speed": SPEED}}
        try:
            async with http.post(f"{self.base_url}/api/v1/tasks", json=body,
                                 headers={"Idempotency-Key": uuid.uuid4().hex}) as response:
                if response.status != 200:
                    self.counts.error_responses.append(f"submit {response.status}: {(await response.text())[:200]}")
                    return
                workflow_id = str((await response.json())["workflow_id"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.counts.error_responses.append(f"submit failed: {exc!r}")
            return
        self.submitted += 1
        await asyncio.gather(*(self.reader(http, workflow_id, i * READERS + k, deadline) for k in range(READERS)))

    async def reader(self, http: aiohttp.ClientSession, workflow_id: str, n: int, deadline: float) -> None:
        tally = Tally(workflow_id)
        self.tallies.append(tally)
        self.reading += 1
        self.max_reading = max(self.max_reading, self.reading)
        try:
            async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                if self.rng.random() < WS_SHARE:
                    await read_ws(http, self.base_url, tally, self.counts)
                else:
                    await read_sse(http, self.base_url, tally, self.counts, resume_p=RESUME_P,
                                   rng=random.Random(n))
        except TimeoutError:
            tally.errors.append(f"not ended by the deadline; last seq {tally.last_seq}")
        finally:
            self.reading -= 1
            self.done += tally.ended

    async def sampler(self, began: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sample: dict[str, Any] = {"t": round(time.monotonic() - began), "reading": self.reading,
                                      "submitted": self.submitted, "done": self.done}
            sample.update({name: round(rss_mb(pid), 1) for name, pid in self.pids.items()})
            self.samples.append(sample)
            log(json.dumps(sample))
            try:
                await asyncio.wait_for(stop.wait(), SAMPLE_S)
            except TimeoutError:
                pass

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            began = time.monotonic()
            stop = asyncio.Event()
            sampler = asyncio.create_task(self.sampler(began, stop))
            deadline = began + SECONDS + LAG_S
            clients: set[asyncio.Task[None]] = set()
            i = 0
            while time.monotonic() - began < SECONDS:
                task = asyncio.create_task(self.client(http, i, deadline))
                clients.add(task)
                task.add_done_callback(clients.discard)
                i += 1
                await asyncio.sleep(max(0.0, began + i / RATE - time.monotonic()))
            log(f"{i} tasks sent in {time.monotonic() - began:.0f} s; waiting for the streams to end")
            if clients:
                await asyncio.wait(clients, timeout=max(1.0, deadline - time.monotonic()))
            stop.set()
            await sampler


def judge(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Each service's RSS trend after the warm-up, and the series."""
    after = [s for s in samples if s["t"] >= WARMUP_S and s["t"] <= SECONDS]
    out: dict[str, Any] = {}
    for name in SERVICES:
        values = [s[name] for s in after]
        if len(values) < 3:
            out[name] = {"flat": False, "why": "too few samples after the warm-up"}
            continue
        times = [float(s["t"]) for s in after]
        slope = trend(times, values)
        growth = slope * (times[-1] - times[0])
        allowed = max(0.1 * statistics.median(values), FLAT_MB)
        out[name] = {"flat": growth < allowed, "growth_mb": round(growth, 1), "allowed_mb": round(allowed, 1),
                     "slope_mb_per_min": round(slope * 60, 2), "min_mb": min(values), "max_mb": max(values),
                     "series_mb": [s[name] for s in samples], "sparkline": sparkline([s[name] for s in samples])}
    return out


def kept_up(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the stack kept up after the warm-up: the number of clients reading must not trend
    upwards (a backlog of unfinished streams grows every service's memory with it, leak or not)."""
    after = [s for s in samples if WARMUP_S <= s["t"] <= SECONDS]
    if len(after) < 3:
        return {"kept_up": False, "why": "too few samples after the warm-up"}
    readers = [float(s["reading"]) for s in after]
    times = [float(s["t"]) for s in after]
    growth = trend(times, readers) * (times[-1] - times[0])
    median = statistics.median(readers)
    return {"kept_up": growth < 0.25 * max(median, 1.0), "reading_growth": round(growth), "reading_median": median,
            "reading_sparkline": sparkline([s["reading"] for s in samples])}


def write_table(figures: dict[str, Any]) -> None:
    rows = ["| service | RSS every 10 s (whole run) | min–max after warm-up | trend | flat |", "|---|---|---|---|---|"]
    for name in SERVICES:
        j = figures["rss"][name]
        if "sparkline" in j:
            rows.append(f"| {name} | `{j['sparkline']}` | {j['min_mb']:.0f}–{j['max_mb']:.0f} MB | "
                        f"{j['slope_mb_per_min']:+.2f} MB/min | {'yes' if j['flat'] else 'NO'} |")
    out = ROOT / "artifacts" / "soak.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(f"Measured {time.strftime('%Y-%m-%d %H:%M')} UTC on {os.cpu_count()} shared cores; command: "
                   f"`make soak` ({SECONDS:.0f} s at {RATE:g} tasks/s, {READERS} readers each).\n\n" + "\n".join(rows)
                   + f"\n\n```json\n{json.dumps({k: v for k, v in figures.items() if k != 'rss'})}\n```\n")


def summarise(soak: Soak, duration: float) -> dict[str, Any]:
    bad = [t for t in soak.tallies if not t.ok()]
    for tally in bad[:10]:
        log(f"BAD {tally.workflow_id}: ended={tally.ended} last={tally.last_seq} dup={tally.duplicated} "
            f"gaps={tally.gaps} errors={tally.errors[:3]}")
    for error in soak.counts.error_responses[:10]:
        log(f"ERROR RESPONSE {error}")
    rss = judge(soak.samples)
    load = kept_up(soak.samples)
    if not load["kept_up"]:
        log(f"the stack did not keep up: clients reading {load.get('reading_sparkline', '')} "
            "(RSS trends then measure the backlog, not leaks)")
    return {
        "soak_seconds": SECONDS, "soak_rate_target": RATE,
        "soak_tasks": soak.submitted,
        "soak_tasks_per_s": round(soak.submitted / SECONDS, 1),
        "soak_clients": len(soak.tallies),
        "soak_max_concurrent_clients": soak.max_reading,
        "soak_ws_clients": sum(1 for t in soak.tallies if t.edge == "ws"),
        "soak_events_checked": sum(len(t.seqs) for t in soak.tallies),
        "soak_resumes": soak.counts.forced,
        "soak_drops": soak.counts.drops,
        "soak_error_responses": len(soak.counts.error_responses),
        "soak_bad_streams": len(bad),
        "soak_lost": sum(t.gaps for t in soak.tallies),
        "soak_duplicated": sum(t.duplicated for t in soak.tallies),
        "soak_unended": sum(not t.ended for t in soak.tallies),
        "soak_rss_flat": all(j.get("flat") for j in rss.values()),
        "soak_kept_up": load["kept_up"],
        "soak_load": load,
        "soak_duration_s": round(duration, 1),
        "rss": rss,
    }


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the stack and the broker (the finally blocks)


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="agentwire-soak-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={
            "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "100000000",
            "AGENTWIRE_STREAMING__RECENT_CACHE_MB": CACHE_MB})
        try:
            stack.start_default()
            pids = {name: stack.services[name].process.pid for name in SERVICES}  # type: ignore[union-attr]
            log(f"stack ready; {SECONDS:.0f} s at {RATE:g} tasks/s")
            soak = Soak(stack.base_url, pids)
            asyncio.run(soak.run())
        finally:
            stack.stop()
            stack.delete_topics()
            postgres.drop_database(stack.prefix)
    figures = summarise(soak, time.monotonic() - started)
    write_table(figures)
    for name in SERVICES:
        j = figures["rss"][name]
        log(f"{name:9} {j.get('sparkline', '')} {j.get('min_mb', 0):.0f}–{j.get('max_mb', 0):.0f} MB, "
            f"trend {j.get('slope_mb_per_min', 0):+.2f} MB/min, flat: {j.get('flat')}")
    print(json.dumps(figures))
    clean = (figures["soak_rss_flat"] and figures["soak_kept_up"] and figures["soak_error_responses"] == 0
             and figures["soak_bad_streams"] == 0
             and figures["soak_unended"] == 0)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
