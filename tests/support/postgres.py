"""Where the tests' PostgreSQL comes from: a given server, or our own script (one per process).

``AGENTWIRE_TEST_POSTGRES=postgresql://user@host:port`` names a server to use; otherwise
``deploy/postgres/postgres.py`` starts one from Debian's package on a free port, once per
process, stopped at exit. Every stack gets its own database. No server is a failure, never a skip.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import asyncpg

from tests.support.run import run_sync

ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()
_server_url: str | None = None


def postgres_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agentwire_postgres", ROOT / "deploy" / "postgres" / "postgres.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def server_url() -> str:
    """``postgresql://user@host:port`` of the tests' server, starting it on first use."""
    global _server_url
    with _lock:
        if _server_url is None:
            _server_url = os.environ.get("AGENTWIRE_TEST_POSTGRES") or _start_own()
        return _server_url


def _start_own() -> str:
    script = postgres_script()
    parent = tempfile.mkdtemp(prefix="agentwire-pg-")
    os.chmod(parent, 0o755)  # noqa: S103 - the server may run as the postgres account (we may be root)
    try:
        server = script.start(Path(parent) / "data", fast=True, timeout=120.0)
    except Exception as exc:
        raise RuntimeError(
            "No PostgreSQL for the tests: set AGENTWIRE_TEST_POSTGRES=postgresql://user@host:port, or let "
            f"deploy/postgres/postgres.py start one (it failed: {exc}); `make system-deps` installs it"
        ) from exc
    atexit.register(_stop_and_remove, script, server, parent)
    return str(server.dsn("")).rstrip("/")


def _stop_and_remove(script: ModuleType, server: object, parent: str) -> None:
    """At exit: stop the server and remove its data (a run of the state bench leaves gigabytes)."""
    try:
        script.stop(server)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def database_dsn(name: str) -> str:
    """A DSN for database ``name``, created if missing."""
    base = server_url()
    run_sync(_create(base, name))
    return f"{base}/{name}"


def drop_database(name: str) -> None:
    run_sync(_drop(server_url(), name))


async def _create(base: str, name: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop(base: str, name: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
