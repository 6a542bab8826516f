"""A fault hook for tests and ``make chaos``: die by SIGKILL at a named point of a submission.

``ingest.fault_point`` names the point (``before_send``: body validated, nothing written;
``after_send``: the record handed to the producer, not yet acknowledged; ``after_ack``: Kafka
acknowledged it, the client has no answer yet) and ``ingest.fault_after`` which submission to
die at. The kill is real (no cleanup, no flush), so what survives is what a crash leaves. The
hook is refused outside dev/test environments.
"""

from __future__ import annotations

import logging
import os
import signal

from agentwire.service.settings import Settings

log = logging.getLogger(__name__)


class FaultConfigError(Exception):
    """A fault hook was configured where it is not allowed."""


class FaultHook:
    def __init__(self, point: str | None, after: int = 1) -> None:
        self._point = point
        self._left = after

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultHook:
        point = settings.ingest.fault_point
        if point is not None and not settings.is_dev:
            raise FaultConfigError(
                f"ingest.fault_point is refused when ENVIRONMENT={settings.environment!r}; "
                "it is allowed only in dev, development or test"
            )
        if point is not None:
            log.warning("fault hook armed: SIGKILL at submission %d, point %s", settings.ingest.fault_after, point)
        return cls(point, settings.ingest.fault_after)

    def reached(self, point: str) -> None:
        """Kill this process if ``point`` is the armed one and its turn has come."""
        if point != self._point:
            return
        self._left -= 1
        if self._left == 0:
            log.warning("fault hook: SIGKILL at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
