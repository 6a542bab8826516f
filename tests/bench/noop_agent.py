"""A no-op faust agent with the processor's own faust settings: faust's per-record cost, alone.

Its consumer fetches like the processor's (``processor.fetch_min_bytes`` and ``fetch_max_wait_ms``, set
on each assignment as the processor sets them), so fed the same records at the same pace it pays what
faust alone costs the processor: the preloaded backlog, or a trickle at the end-to-end rate.

Run as a process by tests/bench/processor.py: consumes the raw topic of the stack named by the
usual AGENTWIRE_* environment, does nothing with each record, and when BENCH_NOOP_EXPECTED
records were read prints one JSON line with the CPU and wall seconds from the first record to
the last (the process's own clock: every thread of it, like /proc's utime + stime).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import faust

from agentwire.processor import consumer
from agentwire.processor.app import faust_app
from agentwire.service import configure_logging, load_settings


def main() -> None:
    configure_logging()
    settings = load_settings()
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.install()
    expected = int(os.environ["BENCH_NOOP_EXPECTED"])
    app = faust_app(settings, f"{settings.kafka.topic_prefix}-noop")
    raw = app.topic(settings.kafka.topics.events_raw, key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")

    @app.agent(raw, name="noop")
    async def noop(stream: faust.StreamT[bytes]) -> None:
        count = 0
        cpu0 = wall0 = 0.0
        async for _ in stream.events():
            count += 1
            if count == 1:
                cpu0, wall0 = time.process_time(), time.monotonic()
            elif count == expected:
                figures = {"records": count, "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - wall0}
                sys.stdout.write("NOOP " + json.dumps(figures) + "\n")
                sys.stdout.flush()

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object = None, assigned: object = None, **_: object) -> None:
        consumer.tune_fetches(app, settings.processor)

    @app.on_rebalance_complete.connect
    async def _ready(sender: object = None, **_: object) -> None:
        sys.stdout.write("NOOP READY\n")  # a trickle is fed from here on
        sys.stdout.flush()

    faust.Worker(app, loglevel=logging.WARNING, quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
