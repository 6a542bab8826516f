"""The store as an aiohttp resource, opened once per application.

The local gateway composes ingest and edge in one application: both call
``setup_store`` and share one pool, one indexer and one progress listener.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from agentwire.service.settings import Settings
from agentwire.store import Store, open_store

STORE = web.AppKey("store", Store)
_SETTINGS = web.AppKey("store_settings", Settings)


def setup_store(app: web.Application, settings: Settings) -> None:
    """Open the store when ``app`` starts (before the services' own resources that use it)."""
    if _SETTINGS in app:
        return
    app[_SETTINGS] = settings
    app.cleanup_ctx.append(_store)


def store_ready(app: web.Application) -> bool:
    store = app.get(STORE)
    return store is not None and store.tasks.ready


async def _store(app: web.Application) -> AsyncIterator[None]:
    async with open_store(app[_SETTINGS]) as store:
        app[STORE] = store
        yield
