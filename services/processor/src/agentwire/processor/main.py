"""Entry point: ``agentwire-processor`` (a faust worker plus /health, /readiness, /metrics)."""

from __future__ import annotations

import asyncio
import logging

import faust
from aiohttp import web
from faust.sensors.prometheus import setup_prometheus_sensors

from agentwire.kafka import ensure_topics
from agentwire.kafka.lag import LagMonitor
from agentwire.processor.app import Processor
from agentwire.service import configure_logging, load_settings, ops_app


def main() -> None:
    configure_logging()
    settings = load_settings()
    asyncio.run(ensure_topics(settings.kafka))
    processor = Processor(settings)
    setup_prometheus_sensors(processor.app, name_prefix="agentwire_processor_faust")  # faust's own sensors

    @processor.app.task
    async def serve_ops() -> None:
        runner = web.AppRunner(ops_app("processor", lambda: processor.ready), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, settings.http.host, settings.processor.ops_port, reuse_address=True).start()

    @processor.app.task
    async def watch_lag() -> None:
        await LagMonitor(settings.kafka, service="processor", group=processor.app.conf.id).run()

    worker = faust.Worker(processor.app, loglevel=logging.INFO, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
