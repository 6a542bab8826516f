"""Ingest throughput: task submissions per second by one ingest process, keep-alive clients.

One ``agentwire-ingest`` process (auth skipped, no rate limit) on a real broker and the tests'
PostgreSQL. Every submission carries an Idempotency-Key; BENCH_INGEST_RETRY_SHARE [0.1] of them
repeat an earlier key with the same body (a client retrying), which must answer the cached response.
Two load generators (BENCH_INGEST_LOADER):

- ``vegeta`` [default]: open loop at a fixed offered rate (the target's shape: p99 at 3,000/s),
  each rate of BENCH_INGEST_RATES [500,1000,2000,3000] for BENCH_INGEST_SECONDS [10] after a warm-up
  of BENCH_INGEST_WARMUP_S [20] at the first rate (the broker's JIT),
  over at most BENCH_INGEST_CONNECTIONS [64] keep-alive connections (built from its pinned Go module
  by deploy/vegeta/fetch_vegeta.sh on first use); the headline figures are those of the last rate;
- ``aiohttp``: closed loop, BENCH_INGEST_CONNECTIONS connections kept busy by a Python client in
  another process for BENCH_INGEST_SECONDS [20] (its latency is 64 ÷ throughput by Little's law: it
  measures capacity, not latency at a rate; it costs the machine about what vegeta does per request).

Prints submissions/s and latency percentiles as JSON on the last line, with the CPU seconds per
second of every process of the run (ingest, broker, PostgreSQL, load generator) and of the rest of
the machine, so the figure can be read as submissions per CPU-second of each. BENCH_INGEST_PROFILE=path
records the ingest process with py-spy over the (last) measured window (``python -m
tests.bench.profile path`` shows the top).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

from tests.bench.proc import cpu_seconds
from tests.bench.profile import recording
from tests.support import postgres
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

LOADER = os.environ.get("BENCH_INGEST_LOADER", "vegeta")
CONNECTIONS = int(os.environ.get("BENCH_INGEST_CONNECTIONS", "64"))
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "10" if LOADER == "vegeta" else "20"))
RATES = [int(r) for r in os.environ.get("BENCH_INGEST_RATES", "500,1000,2000,3000").split(",")]
# the broker's JIT: at a steady 500/s its CPU fell from 0.51 to 0.16 s/s over its first 30 s (docs/performance.md)
WARMUP_S = float(os.environ.get("BENCH_INGEST_WARMUP_S", "20" if LOADER == "vegeta" else "3"))
RETRY_SHARE = float(os.environ.get("BENCH_INGEST_RETRY_SHARE", "0.1"))
LOADERS = int(os.environ.get("BENCH_INGEST_LOADERS", "1"))
PROFILE = os.environ.get("BENCH_INGEST_PROFILE", "")
VEGETA = Path(__file__).resolve().parents[2] / ".cache" / "bin" / "vegeta"
FETCH_VEGETA = Path(__file__).resolve().parents[2] / "deploy" / "vegeta" / "fetch_vegeta.sh"
P99_TARGET_MS = 20.0


async def load(base_url: str, seconds: float, seed: int) -> dict[str, object]:
    """Closed-loop submissions over keep-alive connections; latencies of the measured window."""
    rng = random.Random(seed)
    url = f"{base_url}/api/v1/tasks"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    replays = 0
    used: list[tuple[str, bytes]] = []
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    warm_until = time.monotonic() + WARMUP_S
    stop_at = warm_until + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal replays
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            if used and rng.random() < RETRY_SHARE:
                key, body = rng.choice(used)
                replay = True
            else:
                key = f"bench-{seed}-{n}-{i}-{uuid.uuid4().hex[:8]}"
                body = json.dumps({"query": f"bench {n}/{i}", "mode": "simple"}).encode()
                replay = False
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Idempotency-Key": key,
                                                             "Content-Type": "application/json"}) as response:
                await response.read()
                status = response.status
            took = time.perf_counter() - started
            if not replay and status == 200 and len(used) < 10_000:
                used.append((key, body))
            if time.monotonic() >= warm_until:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1
                replays += replay and response.headers.get("X-Idempotency-Cached") == "true"

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, n) for n in range(CONNECTIONS // LOADERS)))
    return {"latencies": latencies, "statuses": statuses, "replays": replays}


def _loader(base_url: str, seconds: float, seed: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(load(base_url, seconds, seed)))


class CpuMeter:
    """CPU seconds per second of each process of the run and of the rest of the machine, over a window.

    The run's processes are this process's descendants (the broker and PostgreSQL are started by it),
    named by role: ``ingest``, ``loader`` (the load generator), ``broker`` (java), ``postgres`` (its
    server processes), ``profiler`` (py-spy), ``bench`` (the rest, this process included);
    ``machine_other`` is every other process on the machine (other sessions' work).
    """

    def __init__(self, ingest_pid: int) -> None:
        self._ingest = ingest_pid
        self._loaders: set[int] = set()

    def add_loader(self, pid: int) -> None:
        self._loaders.add(pid)

    def __enter__(self) -> CpuMeter:
        self._started = time.monotonic()
        self._before, self._machine_before = self._sample(), _machine_busy_s()
        self._reaped_before = _reaped_children_s()
        return self

    def __exit__(self, *_exc: object) -> None:
        after, machine = self._sample(), _machine_busy_s()
        took = time.monotonic() - self._started
        roles: dict[str, float] = {}
        for pid, (role, cpu) in after.items():
            roles[role] = roles.get(role, 0.0) + cpu - self._before.get(pid, (role, 0.0))[1]
        reaped = _reaped_children_s() - self._reaped_before  # a vegeta attack waited for in the window
        if reaped:
            roles["loader"] = roles.get("loader", 0.0) + reaped
        ours = sum(roles.values())
        roles["machine_other"] = max(0.0, machine - self._machine_before - ours)
        self.per_s = {role: round(cpu / took, 2) for role, cpu in sorted(roles.items())}

    def _sample(self) -> dict[int, tuple[str, float]]:
        children: dict[int, list[int]] = {}
        comm: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                head, _, tail = (entry / "stat").read_text().rpartition(")")
                children.setdefault(int(tail.split()[1]), []).append(int(entry.name))
                comm[int(entry.name)] = head.partition("(")[2]
        found: dict[int, tuple[str, float]] = {}
        todo = [os.getpid()]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            with contextlib.suppress(OSError):
                found[pid] = (self._role(pid, comm.get(pid, "")), cpu_seconds(pid))
        return found

    def _role(self, pid: int, name: str) -> str:
        if pid == self._ingest:
            return "ingest"
        if pid in self._loaders or name == "vegeta":
            return "loader"
        return {"java": "broker", "postgres": "postgres", "py-spy": "profiler"}.get(name, "bench")


def _reaped_children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds spent not idle by the whole machine since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def percentiles(latencies: list[float], statuses: dict[str, int], replays: int, seconds: float,
                cpu: dict[str, float]) -> dict[str, object]:
    """The figures of one measured window (latencies in seconds, sorted)."""
    done = len(latencies)  # every request, answered or not (a timeout counts with its latency)
    answered = statuses.get("200", 0)

    def pct(q: float) -> float:
        return round(latencies[min(done - 1, int(q * done))] * 1000, 2) if done else 0.0

    ingest_cpu = cpu.get("ingest", 0.0)
    return {
        "ingest_submissions_per_s": round(answered / seconds, 1),
        "ingest_submit_p50_ms": pct(0.50),
        "ingest_submit_p99_ms": pct(0.99),
        "ingest_submit_max_ms": pct(1.0),
        "ingest_submissions": done,
        "ingest_replays_cached": replays,
        "ingest_statuses": statuses,
        "ingest_cpu_s_per_s": ingest_cpu,
        "ingest_submissions_per_cpu_s": round(answered / seconds / ingest_cpu, 1) if ingest_cpu else 0.0,
        "ingest_cpu_by_process": cpu,
    }


def measure(base_url: str, pid: int) -> dict[str, object]:
    """Closed loop: the aiohttp generator in LOADERS processes for SECONDS after a warm-up."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    loaders = [multiprocessing.Process(target=_loader, args=(base_url, SECONDS, k, queue)) for k in range(LOADERS)]
    meter = CpuMeter(pid)
    for process in loaders:
        process.start()
        assert process.pid is not None
        meter.add_loader(process.pid)
    time.sleep(WARMUP_S)
    with meter, recording(pid, Path(PROFILE)) if PROFILE else contextlib.nullcontext():
        results = [queue.get(timeout=SECONDS + WARMUP_S + 120) for _ in loaders]
    for process in loaders:
        process.join()
    latencies = sorted(x for r in results for x in r["latencies"])  # type: ignore[attr-defined]
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r["statuses"].items():  # type: ignore[attr-defined]
            statuses[str(status)] = statuses.get(str(status), 0) + count
    replays = sum(int(r["replays"]) for r in results)  # type: ignore[call-overload]
    figures = percentiles(latencies, statuses, replays, SECONDS, meter.per_s)
    return {**figures, "ingest_loader": "aiohttp (closed loop)", "ingest_connections": CONNECTIONS}


def vegeta_targets(path: Path, url: str, count: int, rate: int, seed: int) -> None:
    """``count`` submissions as vegeta JSON targets; RETRY_SHARE of them repeat a key (and body) sent
    at least half a second earlier at ``rate``: a client retrying after a lost answer."""
    rng = random.Random(seed)
    sent: list[tuple[str, str]] = []
    gap = max(1, rate // 2)
    with path.open("w") as out:
        for i in range(count):
            if len(sent) > gap and rng.random() < RETRY_SHARE:
                key, body = sent[rng.randrange(len(sent) - gap)]
            else:
                key = f"bench-{seed}-{i}-{uuid.uuid4().hex[:8]}"
                body = base64.b64encode(json.dumps({"query": f"bench {seed}/{i}", "mode": "simple"}).encode()).decode()
                sent.append((key, body))
            out.write(json.dumps({"method": "POST", "url": url, "body": body, "header": {
                "Idempotency-Key": [key], "Content-Type": ["application/json"]}}) + "\n")


def vegeta_attack(targets: Path, rate: int, seconds: float, results: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(VEGETA), "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/s", f"-duration={seconds}s",
         "-keepalive=true", "-http2=false", f"-connections={CONNECTIONS}", f"-max-connections={CONNECTIONS}",
         f"-workers={CONNECTIONS}", "-timeout=30s", f"-output={results}"],
        stderr=subprocess.PIPE,
    )


def vegeta_results(results: Path) -> tuple[list[float], dict[str, int], int, float, list[float]]:
    """Sorted latencies (s), counts by status ("0": no answer), answers marked as replays, the
    seconds from the first request sent to the last answer received, and the p99 (ms) of each
    second's requests (by when they were sent: where a queue built up)."""
    encoded = subprocess.run([str(VEGETA), "encode", "-to=json", str(results)], capture_output=True, check=True)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    replays = 0
    first, last = float("inf"), 0.0
    by_second: dict[int, list[float]] = {}
    for line in encoded.stdout.splitlines():
        result = json.loads(line)
        latencies.append(result["latency"] / 1e9)
        sent = datetime.fromisoformat(result["timestamp"]).timestamp()
        first, last = min(first, sent), max(last, sent + latencies[-1])
        by_second.setdefault(int(sent), []).append(latencies[-1])
        code = str(result["code"])
        statuses[code] = statuses.get(code, 0) + 1
        headers = result.get("headers") or {}
        replays += headers.get("X-Idempotency-Cached") == ["true"]
    p99s = [round(sorted(v)[int(0.99 * len(v))] * 1000, 1) for _, v in sorted(by_second.items())]
    return sorted(latencies), statuses, replays, last - first, p99s


def measure_vegeta(base_url: str, pid: int, workdir: Path) -> dict[str, object]:
    """Open loop: a warm-up, then each rate of RATES for SECONDS; headline figures of the last rate."""
    subprocess.run(["bash", str(FETCH_VEGETA)], check=True, stdout=sys.stderr)  # builds it once, then a no-op
    url = f"{base_url}/api/v1/tasks"
    steps: list[dict[str, object]] = []
    for n, rate in enumerate([RATES[0], *RATES]):
        warmup = n == 0
        seconds = WARMUP_S if warmup else SECONDS
        targets, results = workdir / f"targets-{n}.json", workdir / f"results-{n}.bin"
        vegeta_targets(targets, url, int(rate * seconds) + rate, rate, seed=n)
        profiling = PROFILE and n == len(RATES)
        meter = CpuMeter(pid)
        with meter, recording(pid, Path(PROFILE)) if profiling else contextlib.nullcontext():
            attack = vegeta_attack(targets, rate, seconds, results)
            meter.add_loader(attack.pid)
            _, err = attack.communicate(timeout=seconds + 120)
        if attack.returncode != 0:
            raise RuntimeError(f"vegeta attack failed: {err.decode(errors='replace')[-500:]}")
        if warmup:
            continue
        latencies, statuses, replays, took, p99s = vegeta_results(results)
        steps.append({"offered_per_s": rate, **percentiles(latencies, statuses, replays, took, meter.per_s),
                      "ingest_p99_ms_by_second": p99s})
        sys.stderr.write(json.dumps(steps[-1]) + "\n")
    ok = [s for s in steps if float(s["ingest_submit_p99_ms"]) <= P99_TARGET_MS  # type: ignore[arg-type]
          and set(s["ingest_statuses"]) == {"200"}]  # type: ignore[arg-type]
    return {**steps[-1], "ingest_loader": "vegeta (open loop)", "ingest_connections": CONNECTIONS,
            "ingest_best_rate_p99_within_20ms": max((int(s["offered_per_s"]) for s in ok), default=0),  # type: ignore[call-overload]
            "ingest_steps": steps}


def main() -> None:
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={
            "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "100000000"})
        ingest = stack.add("ingest", "agentwire-ingest")
        try:
            ingest.start()
            ingest.wait_ready()
            assert ingest.process is not None
            base_url = ingest.health_url.removesuffix("/health")
            if LOADER == "vegeta":
                figures = measure_vegeta(base_url, ingest.process.pid, Path(workdir))
            else:
                figures = measure(base_url, ingest.process.pid)
        finally:
            stack.stop()
            stack.delete_topics()
            postgres.drop_database(stack.prefix)
    figures["ingest_load_average"] = round(os.getloadavg()[0], 2)
    sys.stderr.write(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
