"""Entry point: ``agentwire-runner``."""

from __future__ import annotations

import asyncio

from agentwire.kafka import ensure_topics
from agentwire.runner.worker import RunnerWorker
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
        try:
            await worker.run(stop)
        finally:
            stop.set()
            await ops

    run(run_runner)
