"""Entry point: ``agentwire-ingest``."""

from agentwire.ingest.app import create_app
from agentwire.service.entry import run_http_service


def main() -> None:
    run_http_service("ingest", create_app)
