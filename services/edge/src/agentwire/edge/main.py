"""Entry point: ``agentwire-edge``."""

from agentwire.edge.app import create_app
from agentwire.service.entry import run_http_service


def main() -> None:
    run_http_service("edge", create_app, streams=True)
