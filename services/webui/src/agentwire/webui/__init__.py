"""The agentwire web dashboard: static HTML, JS and CSS served by any aiohttp app.

No build step and no CDN: the files in ``static/`` are what the browser runs. The page talks
only to the public HTTP API (``/api/v1/...``) of the same origin.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"


async def index(_request: web.Request) -> web.FileResponse:
    """The dashboard page."""
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def setup(app: web.Application) -> None:
    """Add ``GET /`` (the dashboard) and ``/ui/...`` (its assets) to ``app``."""
    app.router.add_get("/", index)
    app.router.add_static("/ui/", STATIC_DIR, append_version=False)
