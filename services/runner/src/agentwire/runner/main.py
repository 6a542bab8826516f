"""Entry point: ``agentwire-runner``."""

from __future__ import annotations

import asyncio

from agentwire.kafka.lag import LagMonitor
from agentwire.runner.worker import RunnerWorker, group_of
from agentwire.service import configure_logging, fix_malloc_mmap_threshold, load_settings, ops_app, run, serve
from agentwire.service.waiting import topics_when_kafka_answers


def main() -> None:
    configure_logging()
    fix_malloc_mmap_threshold()
    settings = load_settings()

    async def run_runner(stop: asyncio.Event) -> None:
        ops_port = settings.runner.ops_port
        if not await topics_when_kafka_answers(settings.kafka, stop, service="runner", host=settings.http.host,
                                               port=ops_port):
            return
        worker = RunnerWorker(settings)
        ops = asyncio.create_task(
            serve(ops_app("runner", lambda: worker.ready), settings.http.host, ops_port, stop)
        )
        lag_monitor = LagMonitor(settings.kafka, service="runner", group=group_of(settings))
        lag = asyncio.create_task(lag_monitor.run(stop))
        try:
            await worker.run(stop)
        finally:
            stop.set()
            await ops
            await lag

    run(run_runner, settings.event_loop)
