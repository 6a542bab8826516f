"""The edge against Centrifugo, side by side: same records, same topic, same clients, one run.

One broker, one ``agentwire-edge`` process and one Centrifugo (tests/bench/centrifugo_server.py)
run together. The feeder writes each event record once to the events topic, with a
``centrifugo-channels`` header naming its workflow; the edge tails the topic as always and
Centrifugo consumes it in publication-data mode. For each row and protocol, each server in turn
gets its own clients (tests/bench/watchers.py) and fresh workflows, back to back, three times
(the order alternates); the figures are medians of the three.

Rows: broadcast (1 workflow × 1,000 clients, 500 events), spread (500 workflows × 2 clients,
50 events each), steady (1,000 workflows × 1 client, 1,000 events/s in total for 30 s), and together:
the steady row with both servers' clients connected at once, every record reaching both servers at the
same moment. Latency in a row measured one server after the other carries each phase's own luck (the
broker's and the machine's tail, which dominates p99 on a shared 2-core machine); in the together row
both servers meet the same records under the same load, so their p50/p99 compare like for like.

The fair figure on a 2-core machine shared by the broker, both servers and this load generator
is CPU time: **deliveries per server CPU-second**, from /proc/<pid>/stat of each server over the
window from the first record fed to the last event received. Ratios are ours / Centrifugo (≥ 1
means the edge spends less CPU per delivery; for latency ≤ 1 means the edge is faster).

    python -m tests.bench.centrifugo       # BENCH_VS_ROWS=spread BENCH_VS_PROTOCOLS=sse BENCH_VS_REPEATS=1
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agentwire.schema import Topics
from tests.bench.centrifugo_server import CHANNELS_HEADER, Centrifugo
from tests.bench.feed import Feed
from tests.bench.proc import cpu_times
from tests.bench.profile import recording
from tests.bench.watchers import Crowd, Watcher
from tests.support.broker import kafka_broker
from tests.support.stack import ROOT, Stack

HOST = "127.0.0.1"
REPEATS = int(os.environ.get("BENCH_VS_REPEATS", "3"))
STEADY_S = float(os.environ.get("BENCH_VS_STEADY_S", "30"))
STEADY_RATE = int(os.environ.get("BENCH_VS_STEADY_RATE", "1000"))
# settings for the edge under test, as tests/bench/edge.py takes them: BENCH_EDGE_ENV="KEY=VALUE KEY=VALUE"
EDGE_ENV = dict(item.split("=", 1) for item in os.environ.get("BENCH_EDGE_ENV", "").split())
WARMUP_S = 3.0  # steady-rate latencies of events sent in the first seconds are left out


@dataclass(frozen=True)
class Row:
    name: str
    workflows: int
    clients_per_workflow: int
    events: int  # per workflow, in the measured window
    rate: float | None = None  # events/s in total (None: as fast as the feeder goes)
    together: bool = False  # both servers' clients at once, each record reaching both (paired latencies)

    @property
    def what(self) -> str:
        pace = f"{self.rate:,.0f} events/s for {self.events * self.workflows / self.rate:.0f} s" if self.rate \
            else f"{self.events:,} events each"
        both = ", both servers at once" if self.together else ""
        return f"{self.workflows:,} workflow(s) × {self.clients_per_workflow:,} clients, {pace}{both}"


ROWS = {
    "broadcast": Row("broadcast", 1, 1000, 500),
    "spread": Row("spread", 500, 2, 50),
    "steady": Row("steady", 1000, 1, round(STEADY_S * STEADY_RATE / 1000), float(STEADY_RATE)),
    "together": Row("together", 1000, 1, round(STEADY_S * STEADY_RATE / 1000), float(STEADY_RATE), together=True),
}


class Server:
    """How a client of one server opens a workflow's stream."""

    def __init__(self, name: str, port: int, pid: int, centrifugo: Centrifugo | None = None) -> None:
        self.name = name
        self.port = port
        self.pid = pid
        self._centrifugo = centrifugo

    def path(self, protocol: str, workflow_id: str, client: int) -> str:
        if self._centrifugo is None:
            return f"/api/v1/stream/{protocol}?workflow_id={workflow_id}"
        token = self._centrifugo.token(f"client-{client}", [workflow_id])
        return self._centrifugo.path(protocol, token)


async def phase(servers: list[Server], feed: Feed, row: Row, protocol: str,
                profile: Path | None = None) -> dict[str, dict[str, float]]:
    """The servers given, one row, one protocol: connect, prime, feed, measure until all is received.

    Usually one server at a time; with several (the ``together`` row) each gets its own clients of
    the same workflows and every record reaches all of them at once, so their latencies are paired.
    With ``profile``, py-spy samples the first server during the measured window into that file.
    """
    workflows = [await feed.declare() for _ in range(row.workflows)]
    crowds = {server.name: Crowd([
        Watcher(HOST, server.port, protocol, server.path(protocol, wf, i * row.clients_per_workflow + c),
                timed=row.rate is not None)
        for i, wf in enumerate(workflows) for c in range(row.clients_per_workflow)]) for server in servers}
    try:
        for crowd in crowds.values():
            await crowd.connect()
        # one first event per workflow, after every client is connected: each server then has
        # every subscription live (the edge may hand this one over from history)
        for wf in workflows:
            await feed.emit(wf, "WORKFLOW_STARTED")
        await feed.producer.flush()
        for crowd in crowds.values():
            await crowd.wait(1, 120)
        with recording(servers[0].pid, profile) if profile else contextlib.nullcontext():
            cutoff = time.time() + WARMUP_S
            for crowd in crowds.values():
                for watcher in crowd.watchers:
                    watcher.latencies.clear()
            cpu_before, started = {s.name: cpu_times(s.pid) for s in servers}, time.perf_counter()
            if row.rate is None:
                for _ in range(row.events):
                    for wf in workflows:
                        await feed.emit(wf, message="token " * 8)
            else:
                await steady_feed(feed, workflows, row)
            await feed.producer.flush()
            elapsed: dict[str, float] = {}
            cpu: dict[str, tuple[float, float]] = {}
            for server in servers:
                await crowds[server.name].wait(1 + row.events, 300 + row.events * row.workflows / (row.rate or 10_000))
                elapsed[server.name] = time.perf_counter() - started
                cpu[server.name] = cpu_since(server.pid, cpu_before[server.name])
    finally:
        for crowd in crowds.values():
            await crowd.close()
    results: dict[str, dict[str, float]] = {}
    sent: dict[str, dict[float, float]] = {}  # per server: an event's send time (unique) -> its delay
    for server in servers:
        crowd, (user, system) = crowds[server.name], cpu[server.name]
        delivered = crowd.delivered - len(crowd.watchers)
        total = max(user + system, 0.01)
        figures = {"per_cpu_s": delivered / total, "per_s": delivered / elapsed[server.name], "cpu_s": user + system,
                   "sys_share": system / total, "dropped": crowd.dropped}
        if row.rate is not None:
            delays = sorted(d for w in crowd.watchers for d in w.latencies_after(cutoff))
            figures["p50_ms"] = statistics.median(delays) * 1000
            figures["p99_ms"] = delays[int(len(delays) * 0.99) - 1] * 1000
            sent[server.name] = {at: delay for w in crowd.watchers for at, delay in w.latencies if at >= cutoff}
        results[server.name] = figures
    if len(sent) == 2 and "ours" in sent:
        # paired: how much later than Centrifugo the edge delivered each event both delivered
        theirs = sent["centrifugo"]
        behind = sorted(delay - theirs[at] for at, delay in sent["ours"].items() if at in theirs)
        for q in (1, 50, 99):
            results["ours"][f"behind_p{q}_ms"] = behind[max(int(len(behind) * q / 100) - 1, 0)] * 1000
    return results


def cpu_since(pid: int, before: tuple[float, float]) -> tuple[float, float]:
    user, system = cpu_times(pid)
    return user - before[0], system - before[1]


async def steady_feed(feed: Feed, workflows: list[str], row: Row) -> None:
    """Round-robin over the workflows at ``row.rate`` events/s; each event's message is its send time."""
    assert row.rate is not None
    total = row.events * len(workflows)
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / row.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await feed.emit(workflows[i % len(workflows)], message=repr(time.time()))


async def compare(ours: Server, theirs: Server, feed: Feed, rows: list[str], protocols: list[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name in rows:
        row = ROWS[name]
        for protocol in protocols:
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "centrifugo": []}
            for repeat in range(REPEATS):
                pair = [ours, theirs] if repeat % 2 == 0 else [theirs, ours]
                for servers in [pair] if row.together else [[server] for server in pair]:
                    for server_name, result in (await phase(servers, feed, row, protocol)).items():
                        runs[server_name].append(result)
                        print(f"{name} {protocol} {server_name}: "
                              + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()), file=sys.stderr, flush=True)
                    await asyncio.sleep(1)  # let departing sessions finish outside the next window
            figures.update(summarise(f"vs_{name}_{protocol}", runs))
    return figures


def summarise(prefix: str, runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Medians per server, then the ratios ours / Centrifugo."""
    out: dict[str, float] = {}
    medians = {server: {key: statistics.median(r[key] for r in results) for key in results[0]}
               for server, results in runs.items()}
    for server, values in medians.items():
        out[f"{prefix}_{server}_per_cpu_s"] = round(values["per_cpu_s"])
        out[f"{prefix}_{server}_per_s"] = round(values["per_s"])
        out[f"{prefix}_{server}_clients_dropped"] = max(r["dropped"] for r in runs[server])
        for key in ("p50_ms", "p99_ms", "behind_p1_ms", "behind_p50_ms", "behind_p99_ms"):
            if key in values:
                out[f"{prefix}_{server}_{key}"] = round(values[key], 2)
    ours, theirs = medians["ours"], medians["centrifugo"]
    out[f"{prefix}_cpu_ratio"] = round(ours["per_cpu_s"] / theirs["per_cpu_s"], 2)
    for key in ("p50_ms", "p99_ms"):
        if key in ours:
            out[f"{prefix}_{key.removesuffix('_ms')}_ratio"] = round(ours[key] / theirs[key], 2)
    return out


def table(figures: dict[str, float], rows: list[str], protocols: list[str]) -> str:
    lines = ["| row | protocol | edge: deliveries per CPU-s (per s wall) | Centrifugo | ratio "
             "| latency p50 / p99 ms: edge | Centrifugo |",
             "|---|---|---|---|---|---|---|"]
    for name in rows:
        for protocol in protocols:
            p = f"vs_{name}_{protocol}"
            if f"{p}_cpu_ratio" not in figures:
                continue
            latency = [f"{figures[f'{p}_{s}_p50_ms']} / {figures[f'{p}_{s}_p99_ms']}" if f"{p}_{s}_p99_ms" in figures
                       else "" for s in ("ours", "centrifugo")]
            lines.append(f"| {name}: {ROWS[name].what} | {protocol.upper()} "
                         f"| {figures[f'{p}_ours_per_cpu_s']:,} ({figures[f'{p}_ours_per_s']:,}/s) "
                         f"| {figures[f'{p}_centrifugo_per_cpu_s']:,} ({figures[f'{p}_centrifugo_per_s']:,}/s) "
                         f"| **{figures[f'{p}_cpu_ratio']}** | {latency[0]} | {latency[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = os.environ.get("BENCH_VS_ROWS", "broadcast,spread,steady,together").split(",")
    protocols = os.environ.get("BENCH_VS_PROTOCOLS", "sse,ws").split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-vs-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={"GATEWAY_SKIP_AUTH": "1", **EDGE_ENV})
        edge = stack.add("edge", "agentwire-edge")
        centrifugo = Centrifugo(bootstrap, Topics(stack.prefix).events, Path(workdir))
        edge.start()
        try:
            edge.wait_ready()  # the edge creates the topics
            centrifugo.start()
            centrifugo.wait_ready()
            assert edge.process is not None
            ours = Server("ours", int(edge.health_url.rsplit(":", 1)[1].split("/")[0]), edge.process.pid)
            theirs = Server("centrifugo", centrifugo.port, centrifugo.pid, centrifugo)

            async def run() -> dict[str, float]:
                async with Feed(bootstrap, stack.prefix, channel_header=CHANNELS_HEADER) as feed:
                    return await compare(ours, theirs, feed, rows, protocols)

            figures = asyncio.run(run())
        finally:
            centrifugo.stop()
            stack.stop()
            stack.delete_topics()
    out = ROOT / "artifacts" / "centrifugo.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores shared by the broker, both "
                   f"servers and the load generator; medians of {REPEATS}; command: `make bench`.\n\n"
                   + table(figures, rows, protocols))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
