"""Running a coroutine to completion from synchronous test code, whatever the thread is doing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``; on a thread whose loop is running (Playwright's sync API keeps one on the
    main thread while a browser is open), on a thread of its own, where ``asyncio.run`` is allowed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="run-sync")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
