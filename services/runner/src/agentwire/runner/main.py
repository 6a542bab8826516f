"""Entry point: ``agentwire-runner``."""

from __future__ import annotations

import asyncio

from agentwire.kafka import ensure_topics
from agentwire.kafka.lag import LagMonitor
from agentwire.runner.worker import RunnerWorker, group_of
from agentwire.service import configure_logging, load_settings, ops_app, run, serve


def main() -> None:
    configure_logging()
    settings = load_settings()

    async def run_runner(stop: asyncio.Event) -> None:
        await ensure_topics(settings.kafka)
        worker = RunnerWorker(settings)
        ops = asyncio.create_task(
            serve(ops_app("runner", lambda: worker.ready), settings.http.host, settings.runner.ops_port, stop)
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
