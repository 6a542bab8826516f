"""``make chaos``: kill -9 every service and stop the broker during a run of streaming tasks.

Starts its own Kafka broker (deploy/kafka/broker.py, restartable on the same ports and data
dir), a processor, a runner, one ingest and two edges. Submits tasks at a steady rate to
ingest; every task gets an SSE client (asyncio + httpx) that reads it from the start to
``done``, resuming with Last-Event-ID on the other edge after every drop. Meanwhile it kills
-9 runner, processor, edge1 and ingest in turn (each restarted a few seconds later), kills
ingest inside a submission at each of its fault hook's points (before the send, after the send,
after Kafka's ack), and stops the broker for 10 s. Then it checks that every client saw seq
1..N once, in order, ending with ``done``, that every task is terminal at ingest, and tops the
forced client disconnects up to 1,000 by re-reading finished workflows with Last-Event-ID resumes.

Every phase runs under one overall deadline: what has not ended by then is reported (unended
streams, non-terminal tasks, failed submissions, each with its workflow id) instead of waited for.

Prints one JSON object on its last line and writes ``artifacts/chaos.md``. Knobs (env):
CHAOS_TASKS [240] (at least; submission goes on until the faults are over), CHAOS_RATE [3/s],
CHAOS_SPEED [0.3], CHAOS_DISCONNECTS [1000], CHAOS_FAULTS [1] (0: no faults, a smoke run),
CHAOS_DEADLINE_S [900] (the whole run, broker start included), CHAOS_KEEP=1 keeps the work dir (logs
and the broker's data).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.client import Reader, Tally
from tests.chaos.faults import SUBMISSION_POINTS, Faults
from tests.support.broker import broker_script
from tests.support.stack import ROOT, Stack

TASKS = int(os.environ.get("CHAOS_TASKS", "240"))
RATE = float(os.environ.get("CHAOS_RATE", "3"))
SPEED = float(os.environ.get("CHAOS_SPEED", "0.3"))
DISCONNECTS = int(os.environ.get("CHAOS_DISCONNECTS", "1000"))
FAULTS = os.environ.get("CHAOS_FAULTS", "1") == "1"
DEADLINE_S = float(os.environ.get("CHAOS_DEADLINE_S", "900"))
STREAM_DEADLINE_S = 300.0  # one client reading one workflow to its end, resumes included
SUBMIT_DEADLINE_S = 240.0  # one submission retried through ingest's and the broker's outages
TERMINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED", "TASK_STATUS_TIMEOUT"}
MODES = ["standard", "simple", "complex", "supervisor"]
SERVICES = [("processor", "agentwire-processor"), ("runner", "agentwire-runner"), ("ingest", "agentwire-ingest"),
            ("edge1", "agentwire-edge"), ("edge2", "agentwire-edge")]


def log(message: str) -> None:
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def url(stack: Stack, name: str) -> str:
    return stack.services[name].health_url.removesuffix("/health")


class Run:
    """One chaos run against a started stack."""

    def __init__(self, stack: Stack, faults: Faults, deadline: float) -> None:
        self.stack = stack
        self.deadline = deadline  # time.monotonic() by which every phase is over
        self.faults = faults
        self.ingest = url(stack, "ingest")
        self.edges = [url(stack, "edge1"), url(stack, "edge2")]
        self.tallies: list[Tally] = []
        self.submit_retries = 0
        self.submit_failures: list[str] = []
        self.deadline_hit: list[str] = []
        self.active = 0
        self.max_active = 0
        self.budget = [DISCONNECTS]
        self.rng = random.Random(7)

    async def submit(self, http: httpx.AsyncClient, i: int) -> str:
        """POST the task, retrying with the same Idempotency-Key while ingest or Kafka is down."""
        body = {"query": f"chaos task {i}: research AI trends", "mode": MODES[i % len(MODES)],
                "context": {"speed": SPEED}}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + SUBMIT_DEADLINE_S
        while True:
            try:
                response = await http.post(f"{self.ingest}/api/v1/tasks", json=body, headers=headers)
                if response.status_code == 200:
                    return str(response.json()["workflow_id"])
                error = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                error = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"submit {i} failed for {SUBMIT_DEADLINE_S:g} s: {error}")
            self.submit_retries += 1
            await asyncio.sleep(0.5)

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def client(self, control: httpx.AsyncClient, streams: httpx.AsyncClient, i: int) -> None:
        try:
            workflow_id = await self.submit(control, i)
        except RuntimeError as exc:
            self.submit_failures.append(str(exc))
            return
        except asyncio.CancelledError:
            self.submit_failures.append(f"submit {i} still retrying at the deadline")
            raise
        tally = Tally(workflow_id)
        self.tallies.append(tally)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            reader = Reader(streams, self.edges, tally, first_edge=i % 2, disconnect_p=0.12,
                            budget=self.budget, rng=random.Random(i))
            # A stream that never ends still sends keepalives: only a deadline around the whole read stops it.
            async with asyncio.timeout(min(STREAM_DEADLINE_S, self.left())):
                await reader.run(deadline_s=STREAM_DEADLINE_S)
        except TimeoutError:
            tally.errors.append(f"no done within the deadline; last seq {tally.last_seq}")
        finally:
            self.active -= 1

    async def plan(self) -> None:
        if not FAULTS:
            return
        await asyncio.sleep(12)
        for name in ("runner", "processor", "edge1", "ingest"):
            log(f"kill -9 {name}")
            await self.faults.kill(name)
            log(f"{name} back: {self.faults.kills[-1]}")
            await asyncio.sleep(6)
        for point in SUBMISSION_POINTS:
            log(f"ingest armed to die at {point} of a submission")
            await self.faults.crash_inside_submission("ingest", point)
            log(f"ingest back: {self.faults.kills[-1]}")
            await asyncio.sleep(4)
        log("stopping the broker for 10 s")
        await self.faults.broker_outage(10.0)
        log(f"broker back after {self.faults.broker_outage_s} s")

    async def main_phase(self) -> None:
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
        timeout = httpx.Timeout(30.0, connect=3.0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as control, \
                httpx.AsyncClient(timeout=timeout, limits=limits) as streams:
            stop = asyncio.Event()
            watchdog = asyncio.create_task(self.faults.watchdog(stop))
            plan = asyncio.create_task(self.plan())
            clients: list[asyncio.Task[None]] = []
            began = time.monotonic()
            i = 0
            while i < TASKS or not plan.done():
                clients.append(asyncio.create_task(self.client(control, streams, i)))
                i += 1
                await asyncio.sleep(max(0.0, began + i / RATE - time.monotonic()))
                if not self.left():
                    self.deadline_hit.append("submitting")
                    break
            log(f"{i} tasks submitted; waiting for the streams to end")
            await asyncio.wait([plan, *clients], timeout=self.left())
            for task, what in [(plan, "fault plan"), *((c, "streams") for c in clients)]:
                if not task.done():
                    if what not in self.deadline_hit:
                        self.deadline_hit.append(what)
                    task.cancel()
            results = await asyncio.gather(plan, *clients, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    log(f"client failed: {result!r}")
            stop.set()
            await watchdog

    async def statuses(self) -> dict[str, str]:
        """Final status of every task at ingest; waits up to 60 s for the terminal ones."""
        pending = [t.workflow_id for t in self.tallies]
        final = dict.fromkeys(pending, "unchecked")
        deadline = min(time.monotonic() + 60, self.deadline)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            while pending and time.monotonic() < deadline:
                replies = await asyncio.gather(*(http.get(f"{self.ingest}/api/v1/tasks/{w}") for w in pending),
                                               return_exceptions=True)
                still = []
                for workflow_id, reply in zip(pending, replies, strict=True):
                    if isinstance(reply, httpx.Response):
                        state = reply.json()["status"] if reply.status_code == 200 else f"HTTP {reply.status_code}"
                    else:
                        state = f"unreachable ({type(reply).__name__})"
                    final[workflow_id] = state
                    if state not in TERMINAL:
                        still.append(workflow_id)
                pending = still
                if pending:
                    await asyncio.sleep(0.5)
        return final

    async def topup_disconnects(self) -> list[Tally]:
        """Re-read finished workflows with a forced disconnect every few frames until the budget is spent."""
        done = [t.workflow_id for t in self.tallies if t.ended]
        extra: list[Tally] = []
        if not done or self.budget[0] <= 0:
            return extra
        sem = asyncio.Semaphore(25)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)

        async def one(http: httpx.AsyncClient, workflow_id: str, k: int) -> None:
            async with sem:
                if self.budget[0] <= 0:
                    return
                tally = Tally(workflow_id)
                extra.append(tally)
                await Reader(http, self.edges, tally, first_edge=k % 2, disconnect_p=0.3, budget=self.budget,
                             rng=random.Random(10_000 + k)).run(deadline_s=60)

        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=3.0), limits=limits) as http:
            k = 0
            while self.budget[0] > 0 and self.left() > 0:
                batch = [one(http, done[(k + j) % len(done)], k + j) for j in range(50)]
                k += 50
                try:
                    async with asyncio.timeout(self.left()):
                        await asyncio.gather(*batch)
                except TimeoutError:
                    self.deadline_hit.append("disconnect top-up")
        return extra


def summarise(run: Run, extra: list[Tally], final: dict[str, str], started: float) -> dict[str, Any]:
    tallies = run.tallies + extra
    statuses = Counter(final.values())
    unended = [{"workflow_id": t.workflow_id, "last_seq": t.last_seq, "status": final.get(t.workflow_id, "?")}
               for t in tallies if not t.ended]
    non_terminal = {w: s for w, s in final.items() if s not in TERMINAL}
    for item in unended[:10]:
        log(f"UNENDED stream {item}")
    for workflow_id, state in list(non_terminal.items())[:10]:
        log(f"NON-TERMINAL task {workflow_id}: {state}")
    for failure in run.submit_failures[:10]:
        log(f"SUBMIT FAILED {failure}")
    bad = [t for t in tallies if not t.ok()]
    dups = [d for t in tallies for d in t.dup_details]
    if dups:
        path = ROOT / "artifacts" / "chaos-duplicates.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(dups, indent=1))
        log(f"{len(dups)} duplicates, first ones: {dups[:5]}; all in {path}")
    for tally in bad[:10]:
        log(f"BAD {tally.workflow_id}: ended={tally.ended} last={tally.last_seq} dup={tally.duplicated} "
            f"gaps={tally.gaps} errors={tally.errors[:3]}")
    return {
        "tasks": len(run.tallies),
        "clients": len(run.tallies),
        "max_concurrent_clients": run.max_active,
        "events_checked": sum(len(t.seqs) for t in run.tallies),
        "lost": sum(t.gaps for t in tallies),
        "duplicated": sum(t.duplicated for t in tallies),
        "unended_streams": len(unended),
        "unended": unended[:20],
        "bad_streams": len(bad),
        "timed_out": statuses.get("TASK_STATUS_TIMEOUT", 0),
        "non_terminal": len(non_terminal),
        "non_terminal_tasks": dict(list(non_terminal.items())[:20]),
        "submit_failures": len(run.submit_failures),
        "deadline_hit": run.deadline_hit,
        "statuses": dict(statuses),
        "kills": run.faults.kills,
        "crashes": run.faults.crashes,
        "broker_outage_s": run.faults.broker_stopped_s,
        "broker_unavailable_s": run.faults.broker_outage_s,
        "disconnects": sum(t.forced for t in tallies),
        "disconnects_live": sum(t.forced for t in run.tallies),
        "disconnect_rereads": len(extra),
        "drops_resumed": sum(t.drops for t in tallies),
        "connect_errors": sum(t.connect_errors for t in tallies),
        "not_found_replies": sum(t.not_found for t in tallies),
        "clean_close_without_done": sum(t.clean_close_without_done for t in tallies),
        "submit_retries": run.submit_retries,
        "duration_s": round(time.monotonic() - started, 1),
    }


LOG_MARKERS = {"unretrieved_send_errors": "Future exception was never retrieved", "tracebacks": "Traceback",
               "skipped_records": "records skipped:"}


def scan_logs(workdir: Path) -> dict[str, dict[str, int]]:
    """Count tell-tale lines per service log (e.g. producer sends whose failure nobody awaited)."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(workdir.glob("*.log")):
        text = path.read_text(errors="replace")
        counts = {key: text.count(marker) for key, marker in LOG_MARKERS.items() if marker in text}
        if counts:
            found[path.stem] = counts
    return found


def write_table(figures: dict[str, Any]) -> None:
    out = ROOT / "artifacts" / "chaos.md"
    out.parent.mkdir(exist_ok=True)
    rows = ["| figure | value |", "|---|---|"]
    for key, value in figures.items():
        shown = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        rows.append(f"| {key} | {shown.replace('|', '/')} |")
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} shared cores; command: "
              "`make chaos` (`python -m tests.chaos.run`).\n\n")
    out.write_text(header + "\n".join(rows) + "\n")


async def chaos(stack: Stack, faults: Faults, started: float) -> dict[str, Any]:
    run = Run(stack, faults, started + DEADLINE_S)
    await run.main_phase()
    log("main phase over; checking statuses")
    final = await run.statuses()
    log(f"statuses {dict(Counter(final.values()))}; topping up forced disconnects ({run.budget[0]} left)")
    extra = await run.topup_disconnects()
    return summarise(run, extra, final, started)


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="agentwire-chaos-"))
    script = broker_script()
    log(f"work dir {workdir}; starting the broker")
    broker = script.start(workdir / "kafka", partitions=12, timeout=120.0)
    stack = Stack(broker.bootstrap, workdir, extra_env={
        "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "1000000"})
    faults = Faults(stack.services, script, broker)
    try:
        for name, command in SERVICES:
            stack.add(name, command)
        for service in stack.services.values():
            service.start()
        for service in stack.services.values():
            service.wait_ready()
        log("stack ready")
        faults.started = time.monotonic()
        figures = asyncio.run(chaos(stack, faults, started))
    finally:
        stack.stop()
        script.stop(workdir / "kafka")
        findings = scan_logs(workdir)
        if os.environ.get("CHAOS_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")
    figures["log_findings"] = findings
    write_table(figures)
    print(json.dumps(figures))
    clean = all(figures[k] == 0 for k in ("lost", "duplicated", "unended_streams", "bad_streams", "non_terminal",
                                          "submit_failures")) and not figures["deadline_hit"]
    clean = clean and all(k.get("hook_fired", True) for k in figures["kills"])
    # records an agent never saw (agentwire.processor.offsets) are lost work even when every stream
    # still checks out (a task admitted by its play's first event instead)
    clean = clean and not any("skipped_records" in counts for counts in findings.values())
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
