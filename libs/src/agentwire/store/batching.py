"""Natural batching: concurrent calls that arrive while a batch is in flight go out together next.

A lone call goes out at once (no added latency); under load, every call that arrived during one
database round trip shares the next one. Used for the per-submission statements of ingest (the
idempotency read and the store row), which would otherwise cost one round trip each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``await batcher.call(item)`` runs ``run([items…])`` for a batch and returns this item's result."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], *, max_items: int = 500) -> None:
        self._run = run
        self._max = max_items
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch, which raise it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): so are the calls waiting for it
                for _, future in [*batch, *self._pending]:
                    future.cancel()
                self._pending = []
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
