"""Waiting for a condition with a deadline: the one polling helper the tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.05


def eventually(condition: Callable[[], T], timeout: float = 30.0, what: str | Callable[[], str] = "condition") -> T:
    """Return the first truthy value of ``condition()``; fail after ``timeout`` seconds.

    ``what`` names the condition in the failure; a callable is asked then (e.g. for the last state seen).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what} not met after {timeout}s")
        time.sleep(POLL_S)


async def eventually_async(
    condition: Callable[[], Awaitable[T]],
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline on a poll, as in eventually()
    what: str = "condition",
) -> T:
    """The same for an async condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout}s")
        await asyncio.sleep(POLL_S)
