"""Start before Kafka answers: serve the probes (``/health`` 200, ``/readiness`` 503) until the topics exist.

A service whose broker is down (or not up yet, as in a fresh compose or Kubernetes roll-out) stays alive and
says so, instead of exiting or leaving its port closed: an orchestrator then keeps it out of rotation
without restarting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from agentwire.kafka import ensure_topics
from agentwire.kafka.errors import TopicLayoutError
from agentwire.service.lifecycle import run
from agentwire.service.ops import ops_app
from agentwire.service.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

RETRY_S = 2.0


async def topics_when_kafka_answers(
    kafka: KafkaSettings, stop: asyncio.Event, *, service: str, host: str, port: int
) -> bool:
    """Create the topics as soon as Kafka answers, serving not-ready probes on ``host:port`` meanwhile.

    Returns False when ``stop`` is set first. The probe server is closed before returning, so the
    caller can bind the same port.
    """
    runner = web.AppRunner(ops_app(service, lambda: False), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    try:
        attempt = 0
        while not stop.is_set():
            attempt += 1
            created = asyncio.ensure_future(ensure_topics(kafka))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({created, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if created not in done:
                created.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await created
                return False
            error = created.exception()
            if error is None:
                return True
            if isinstance(error, TopicLayoutError):
                raise error  # Kafka answered: the topics contradict the settings; waiting will not help
            log.warning("Kafka at %s not usable yet (attempt %d: %s); /readiness says 503",
                        kafka.bootstrap_servers, attempt, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
        return False
    finally:
        await runner.cleanup()


def wait_for_topics(settings: Settings, *, service: str, port: int) -> bool:
    """The same, blocking, for a worker that runs its own loop afterwards (the faust processor).

    Returns False when SIGTERM/SIGINT came first.
    """
    answered = False

    async def wait(stop: asyncio.Event) -> None:
        nonlocal answered
        answered = await topics_when_kafka_answers(
            settings.kafka, stop, service=service, host=settings.http.host, port=port
        )

    run(wait)
    return answered
