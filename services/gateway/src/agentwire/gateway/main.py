"""Entry point: ``agentwire-gateway`` — ingest and edge routes on one port.

The one place that imports several services: in Kubernetes an Ingress routes
``/api/v1/stream/`` to edge pods and the rest to ingest pods instead.
"""

from __future__ import annotations

from aiohttp import web

from agentwire import webui
from agentwire.edge import app as edge
from agentwire.ingest import app as ingest
from agentwire.service.entry import run_http_service
from agentwire.service.http import base_app, enable_cors
from agentwire.service.ops import add_ops_routes
from agentwire.service.settings import Settings


def create_app(settings: Settings) -> web.Application:
    app = base_app(settings)
    ingest.setup(app, settings)
    edge.setup(app, settings)
    webui.setup(app)
    add_ops_routes(app, "gateway", lambda: ingest.is_ready(app) and edge.is_ready(app))
    enable_cors(app, settings)
    return app


def main() -> None:
    run_http_service("gateway", create_app, streams=True)
