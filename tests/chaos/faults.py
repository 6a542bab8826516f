"""The faults: kill -9 and restart a service, kill ingest inside a submission (its fault hook),
stop and restart the broker, restart crashed services."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.stack import Service

FAULT_POINT = "AGENTWIRE_INGEST__FAULT_POINT"
FAULT_AFTER = "AGENTWIRE_INGEST__FAULT_AFTER"
SUBMISSION_POINTS = ("before_send", "after_send", "after_ack", "after_store")


@dataclass
class Faults:
    """Injects faults into a running stack and records what happened, with timings."""

    services: dict[str, Service]
    broker_script: ModuleType
    broker: Any
    started: float = field(default_factory=time.monotonic)
    kills: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    broker_outage_s: float = 0.0
    broker_stopped_s: float = 0.0
    _down: set[str] = field(default_factory=set)

    def at(self) -> float:
        return round(time.monotonic() - self.started, 1)

    async def kill(self, name: str, down_s: float = 3.0) -> None:
        """kill -9 ``name``, start it again ``down_s`` later, wait until it is ready."""
        service = self.services[name]
        self._down.add(name)
        record: dict[str, Any] = {"service": name, "at_s": self.at()}
        await asyncio.to_thread(service.kill)
        await asyncio.sleep(down_s)
        killed_for = time.monotonic()
        service.start()
        await asyncio.to_thread(service.wait_ready, 120.0)
        record["down_s"] = down_s
        record["ready_after_restart_s"] = round(time.monotonic() - killed_for, 1)
        self._down.discard(name)
        self.kills.append(record)

    async def crash_inside_submission(self, name: str, point: str, *, nth: int = 1, timeout_s: float = 45.0) -> None:
        """Restart ``name`` with ingest's fault hook armed (SIGKILL at ``point`` of its ``nth`` submission),
        wait for the hook to fire, then start it again unarmed and wait until it is ready."""
        service = self.services[name]
        self._down.add(name)
        record: dict[str, Any] = {"service": name, "fault_point": point, "at_s": self.at()}
        await asyncio.to_thread(service.kill)
        service.env.update({FAULT_POINT: point, FAULT_AFTER: str(nth)})
        service.start()
        assert service.process is not None
        try:
            code = await asyncio.to_thread(service.process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            await asyncio.to_thread(service.kill)
        record["hook_fired"] = code == -signal.SIGKILL
        if not record["hook_fired"]:
            record["log_tail"] = service.tail(15)
        service.env.pop(FAULT_POINT)
        service.env.pop(FAULT_AFTER)
        restarted = time.monotonic()
        service.start()
        await asyncio.to_thread(service.wait_ready, 120.0)
        record["ready_after_restart_s"] = round(time.monotonic() - restarted, 1)
        self._down.discard(name)
        self.kills.append(record)

    async def broker_outage(self, stopped_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM), keep it down ``stopped_s``, start it on the same ports and data."""
        self._down.add("kafka")
        began = time.monotonic()
        await asyncio.to_thread(self.broker_script.stop, self.broker)
        stopped = time.monotonic()
        await asyncio.sleep(stopped_s)
        self.broker = await asyncio.to_thread(
            self.broker_script.start, Path(self.broker.data_dir), self.broker.port, self.broker.controller_port,
            partitions=12, timeout=120.0)
        self.broker_stopped_s = round(time.monotonic() - stopped, 1)
        self.broker_outage_s = round(time.monotonic() - began, 1)
        self.kills.append({"service": "kafka", "at_s": round(began - self.started, 1),
                           "down_s": self.broker_stopped_s})
        self._down.discard("kafka")

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Restart any service that exited by itself (a finding, counted in ``crashes``)."""
        while not stop.is_set():
            for name, service in self.services.items():
                process = service.process
                if name in self._down or process is None or process.poll() is None:
                    continue
                self.crashes.append({"service": name, "at_s": self.at(), "exit": process.returncode})
                service.start()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
