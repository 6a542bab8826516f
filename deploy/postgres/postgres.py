#!/usr/bin/env python3
"""A local PostgreSQL for development and tests, from Debian's ``postgresql`` package.

    python3 deploy/postgres/postgres.py run --data-dir .data/postgres --port 5432   # foreground
    python3 -c 'import postgres; postgres.start(dir)' ... postgres.stop(server)      # from tests

``initdb`` once per data directory (trust auth on 127.0.0.1 only, superuser ``agentwire``),
then ``postgres`` on 127.0.0.1. PostgreSQL refuses to run as root: when we are root the data
directory is handed to the ``postgres`` account the package created and the server runs as it.
The store is an index derived from Kafka (docs/state.md), so tests may run it with
``fsync=off``; ``synchronous_commit=off`` is always safe for it (a lost commit takes its
stored offsets with it, and the indexer reads those records again).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "agentwire"
DATABASE = "agentwire"
RUN_AS = "postgres"  # the account Debian's package creates; used only when we are root


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up or started."""


@dataclass
class Server:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"


def bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresError("no PostgreSQL server found: install Debian's postgresql package (make system-deps)")


def _as_owner() -> dict[str, object]:
    """Popen arguments that run a child as the server's owner."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PostgresError(f"running as root needs the {RUN_AS!r} account (Debian's postgresql package)") from None
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _hand_over(path: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam(RUN_AS)
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, account.pw_uid, account.pw_gid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def init(data_dir: Path) -> None:
    """Create the cluster in ``data_dir`` unless it is there already."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _hand_over(data_dir)
    command = [str(bin_dir() / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust",
               "-E", "UTF8", "--locale=C", "--no-sync"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, **_as_owner())  # type: ignore[call-overload]
    if done.returncode != 0:
        raise PostgresError(f"initdb failed:\n{done.stdout}\n{done.stderr}")


def start(data_dir: str | os.PathLike[str], port: int = 0, *, fast: bool = False, timeout: float = 60.0) -> Server:
    """Start a server on 127.0.0.1 and wait until database ``agentwire`` accepts connections."""
    data_dir = Path(data_dir).resolve()
    init(data_dir)
    port = port or free_port()
    settings = {"listen_addresses": HOST, "port": str(port), "unix_socket_directories": str(data_dir),
                "synchronous_commit": "off", "max_connections": "200", "shared_buffers": "128MB"}
    if fast:  # tests and benchmarks: no durability; a cache that holds a million tasks' indexes
        settings |= {"fsync": "off", "full_page_writes": "off", "shared_buffers": "256MB"}
    command = [str(bin_dir() / "postgres"), "-D", str(data_dir)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    log = (data_dir / "server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, **_as_owner())  # type: ignore[call-overload]
    log.close()
    server = Server(data_dir, port, process)
    try:
        _wait_ready(server, timeout)
        _create_database(server)
    except BaseException:
        stop(server)
        raise
    return server


def _psql(server: Server, sql: str, database: str = "postgres") -> str:
    command = [str(bin_dir() / "psql"), "-h", HOST, "-p", str(server.port), "-U", SUPERUSER, "-d", database,
               "-tAc", sql]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"psql {sql!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    probe = [str(bin_dir() / "pg_isready"), "-q", "-h", HOST, "-p", str(server.port), "-U", SUPERUSER]
    while subprocess.run(probe, check=False).returncode != 0:
        if server.process.poll() is not None:
            raise PostgresError(f"postgres exited ({server.process.returncode}):\n{_tail(server)}")
        if time.monotonic() > deadline:
            raise PostgresError(f"postgres not ready after {timeout}s:\n{_tail(server)}")
        time.sleep(0.1)


def _create_database(server: Server, name: str = DATABASE) -> None:
    if _psql(server, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":  # noqa: S608 - our constant
        _psql(server, f'CREATE DATABASE "{name}"')


def _tail(server: Server, lines: int = 30) -> str:
    try:
        return "\n".join((server.data_dir / "server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(server: Server, timeout: float = 30.0) -> None:
    """Fast shutdown (SIGINT: roll back open transactions, then exit)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def run(data_dir: str, port: int) -> int:
    """Foreground mode for ``make run``: serve until SIGTERM or SIGINT."""
    server = start(data_dir, port)
    print(f"postgres ready: {server.dsn()}", flush=True)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping and server.process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(0.5)
    stop(server)
    return 0 if stopping else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start in the foreground until SIGTERM")
    run_parser.add_argument("--data-dir", default=".data/postgres")
    run_parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    try:
        return run(args.data_dir, args.port)
    except PostgresError as exc:
        print(f"postgres: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
