#!/usr/bin/env python3
"""Fetch and run a real single-node Apache Kafka broker without Docker.

The broker's runtime classpath is resolved from Maven Central with the tiny
``deploy/kafka/pom.xml`` (``mvn dependency:copy-dependencies``) into the
git-ignored cache ``<repo>/.cache/kafka/kafka-<version>/libs``; the broker is
then started as ``java -cp "<libs>/*" kafka.Kafka server.properties`` in KRaft
combined mode (one node that is both broker and controller) on 127.0.0.1.

This file is deliberately standard-library only (Python 3.11+): it has to run
before the project's virtualenv exists (CI bootstrap, ``make``/honcho), and it
is also imported by the pytest fixtures through ``importlib``.

Command line (progress goes to stderr; ``start``/``run`` print the line
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>`` on stdout once the broker is ready)::

    python deploy/kafka/broker.py fetch  [--force]
    python deploy/kafka/broker.py start  --data-dir DIR [--port P] [--controller-port C]
                                         [--partitions 12] [--log FILE] [--timeout 90]
    python deploy/kafka/broker.py run    --data-dir DIR [same options as start]
    python deploy/kafka/broker.py stop   --data-dir DIR [--timeout 30]
    python deploy/kafka/broker.py status --data-dir DIR

Common options: ``--kafka-version`` (default ``$AGENTWIRE_KAFKA_VERSION`` or
4.1.2; 3.x versions use the reload4j logging profile of the POM) and
``--cache-dir`` (default ``$AGENTWIRE_KAFKA_CACHE`` or ``<repo>/.cache/kafka``).

Python API (for fixtures)::

    spec = importlib.util.spec_from_file_location("kafka_broker", "deploy/kafka/broker.py")
    kb = importlib.util.module_from_spec(spec); spec.loader.exec_module(kb)
    broker = kb.start(tmp_path / "kafka")       # free ports, waits until ready
    ...  broker.bootstrap  ...                   # "127.0.0.1:<port>"
    kb.stop(broker)                              # or kb.stop(data_dir)

Java selection: ``$AGENTWIRE_JAVA`` (a ``java`` executable or a JDK home) if
set; otherwise ``$JAVA_HOME/bin/java`` only when it is a Java 17; otherwise the
``java`` on ``PATH``. A ``JAVA_HOME`` pointing at another JDK (e.g. 25, which
Kafka 4.1 is not tested on) is ignored.
"""

import argparse
import base64
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "Broker",
    "BrokerError",
    "default_cache_dir",
    "fetch",
    "find_java",
    "free_ports",
    "libs_dir",
    "run",
    "start",
    "status",
    "stop",
]

# --------------------------------------------------------------------------- #
# Constants and paths
# --------------------------------------------------------------------------- #

DEPLOY_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEPLOY_DIR.parents[1]
POM_FILE = DEPLOY_DIR / "pom.xml"
LOG4J2_CONFIG = DEPLOY_DIR / "log4j2.properties"

DEFAULT_KAFKA_VERSION = os.environ.get("AGENTWIRE_KAFKA_VERSION", "4.1.2")
DEFAULT_PARTITIONS = 12
DEFAULT_START_TIMEOUT = 90.0
DEFAULT_STOP_TIMEOUT = 30.0
HOST = "127.0.0.1"
NODE_ID = 1
PREFERRED_JAVA_MAJOR = 17

READY_MARKER = "Kafka Server started"
PID_FILE = "broker.pid"
STATE_FILE = "broker.json"
CLUSTER_ID_FILE = "cluster.id"
PROPERTIES_FILE = "server.properties"
LOG4J1_FILE = "log4j.properties"
DEFAULT_LOG_FILE = "broker.log"
KRAFT_LOG_DIR = "kraft-logs"
FETCH_MARKER = "fetch.complete.json"

#: JVM flags for the broker on a 2-core test box (Kafka's scripts default to a
#: 1 GiB heap and G1 with unbounded GC threads).
BROKER_JVM_FLAGS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-XX:ParallelGCThreads=2",
    "-XX:ConcGCThreads=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)
#: JVM flags for the one-shot ``StorageTool format``.
FORMAT_JVM_FLAGS = (
    "-Xmx128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)

#: log4j 1.x (reload4j) configuration for the Kafka 3.x fallback, written into
#: the data dir; same content as log4j2.properties.
LOG4J1_CONFIG_TEXT = """\
log4j.rootLogger=WARN, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


class BrokerError(RuntimeError):
    """Raised when fetching, formatting, starting or stopping the broker fails."""


@dataclasses.dataclass(frozen=True)
class Broker:
    """A running (or recently started) broker.

    Attributes:
        bootstrap: ``"127.0.0.1:<port>"``, the value for KAFKA_BOOTSTRAP_SERVERS.
        port: PLAINTEXT listener port.
        controller_port: KRaft CONTROLLER listener port.
        pid: process id of the ``java`` process.
        data_dir: directory holding server.properties, the KRaft log dir,
            broker.pid, broker.json and (by default) broker.log.
        log_file: file the broker's stdout/stderr goes to (None in ``run``
            mode when it is forwarded to our stdout only).
        version: Kafka version.
        cluster_id: KRaft cluster id the storage was formatted with.
    """

    bootstrap: str
    port: int
    controller_port: int
    pid: int
    data_dir: Path
    log_file: Path | None
    version: str
    cluster_id: str

    @property
    def alive(self) -> bool:
        """True while the broker process exists (and is not a zombie)."""
        return _pid_alive(self.pid)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop this broker; see :func:`stop`."""
        return stop(self.data_dir, timeout=timeout)

    def to_json(self) -> dict[str, object]:
        """JSON-serialisable form (stored as ``<data_dir>/broker.json``)."""
        data = dataclasses.asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["log_file"] = str(self.log_file) if self.log_file else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Broker":
        """Inverse of :meth:`to_json`."""
        log_file = data.get("log_file")
        return cls(
            bootstrap=str(data["bootstrap"]),
            port=int(data["port"]),  # type: ignore[arg-type]
            controller_port=int(data["controller_port"]),  # type: ignore[arg-type]
            pid=int(data["pid"]),  # type: ignore[arg-type]
            data_dir=Path(str(data["data_dir"])),
            log_file=Path(str(log_file)) if log_file else None,
            version=str(data["version"]),
            cluster_id=str(data["cluster_id"]),
        )


# Popen objects of brokers started by this process, so stop() can reap them
# (otherwise they linger as zombies and look alive to kill(pid, 0)).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _log(message: str) -> None:
    """Progress output; always stderr so stdout stays machine-readable."""
    print(f"[kafka-broker] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# Fetch (Maven)
# --------------------------------------------------------------------------- #


def default_cache_dir() -> Path:
    """``$AGENTWIRE_KAFKA_CACHE`` or ``<repo>/.cache/kafka``."""
    env = os.environ.get("AGENTWIRE_KAFKA_CACHE")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / "kafka"


def _is_legacy(version: str) -> bool:
    """Kafka 3.x logs through SLF4J 1.7 + reload4j instead of log4j2."""
    return int(version.split(".", 1)[0]) < 4


def _version_dir(version: str, cache_dir: Path | None) -> Path:
    return (cache_dir or default_cache_dir()) / f"kafka-{version}"


def libs_dir(version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Directory the jars of ``version`` are (or will be) copied to."""
    return _version_dir(version, cache_dir) / "libs"


def _fetch_fingerprint(version: str, log4j2_version: str | None) -> dict[str, object]:
    """What a complete fetch depends on; a change triggers a re-fetch."""
    return {
        "kafka_version": version,
        "profile": "reload4j" if _is_legacy(version) else "log4j2",
        "log4j2_version": log4j2_version,
        "pom_sha256": hashlib.sha256(POM_FILE.read_bytes()).hexdigest(),
    }


def _fetch_complete(version_dir: Path, fingerprint: dict[str, object]) -> bool:
    marker = version_dir / FETCH_MARKER
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return all(recorded.get(k) == v for k, v in fingerprint.items())


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (serialises concurrent fetches, e.g. xdist workers)."""
    import fcntl  # POSIX only; imported lazily so the module imports anywhere

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(
    version: str = DEFAULT_KAFKA_VERSION,
    *,
    cache_dir: Path | None = None,
    force: bool = False,
    log4j2_version: str | None = None,
    mvn: str | None = None,
    timeout: float | None = 1800.0,
) -> Path:
    """Download the broker's runtime jars from Maven Central; return the libs dir.

    Runs ``mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies
    -DincludeScope=runtime -DoutputDirectory=<libs>`` (artifacts are cached in
    ``~/.m2`` as usual). A marker file written at the very end records the
    version, logging profile and POM hash; without a matching marker the libs
    dir is wiped and fetched again, so an interrupted fetch is redone.

    Args:
        version: Kafka version (``kafka_2.13`` artifact).
        cache_dir: cache root (default :func:`default_cache_dir`).
        force: re-fetch even if the marker says the libs are complete.
        log4j2_version: override the POM's log4j2 version (4.x only).
        mvn: Maven executable (default ``$AGENTWIRE_MVN`` or ``mvn`` on PATH).
        timeout: seconds before the Maven run is aborted.
    """
    version_dir = _version_dir(version, cache_dir)
    libs = version_dir / "libs"
    fingerprint = _fetch_fingerprint(version, log4j2_version)
    if not force and _fetch_complete(version_dir, fingerprint):
        return libs

    with _file_lock(version_dir.parent / f".kafka-{version}.lock"):
        if not force and _fetch_complete(version_dir, fingerprint):
            return libs  # another process finished it while we waited
        mvn_exe = mvn or os.environ.get("AGENTWIRE_MVN") or shutil.which("mvn")
        if not mvn_exe:
            raise BrokerError("Maven ('mvn') not found on PATH; set AGENTWIRE_MVN")
        (version_dir / FETCH_MARKER).unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        libs.mkdir(parents=True)
        cmd = [
            mvn_exe, "-B", "-q", "-f", str(POM_FILE),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
            f"-Dkafka.version={version}",
        ]
        if _is_legacy(version):
            cmd.append("-Preload4j")
        if log4j2_version:
            cmd.append(f"-Dlog4j2.version={log4j2_version}")
        _log(f"fetching Kafka {version} jars from Maven Central into {libs}")
        began = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=DEPLOY_DIR, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"mvn timed out after {timeout}s: {shlex.join(cmd)}") from exc
        output = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            raise BrokerError(
                f"mvn failed (exit {proc.returncode}): {shlex.join(cmd)}\n{output[-4000:]}"
            )
        jars = sorted(p.name for p in libs.glob("*.jar"))
        if f"kafka_2.13-{version}.jar" not in jars:
            raise BrokerError(f"kafka_2.13-{version}.jar missing from {libs} after mvn")
        marker = dict(fingerprint, jars=len(jars), fetched_at=time.time())
        tmp = version_dir / (FETCH_MARKER + ".tmp")
        tmp.write_text(json.dumps(marker, indent=2) + "\n")
        tmp.replace(version_dir / FETCH_MARKER)
        _log(f"fetched {len(jars)} jars in {time.monotonic() - began:.1f}s")
        return libs


# --------------------------------------------------------------------------- #
# Java, ports, configuration
# --------------------------------------------------------------------------- #


def _java_major(java: str) -> int | None:
    """Major version of a ``java`` executable (8 for 1.8), or None if unknown."""
    try:
        out = subprocess.run(
            [java, "-version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=30, check=False,
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """Pick the ``java`` used for the broker.

    Order: ``$AGENTWIRE_JAVA`` (executable or JDK home, used as is);
    ``$JAVA_HOME/bin/java`` if it is Java 17; the ``java`` on PATH (with a
    warning if it is not Java 17).
    """
    override = os.environ.get("AGENTWIRE_JAVA")
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / "bin" / "java"
        if not os.access(path, os.X_OK):
            raise BrokerError(f"AGENTWIRE_JAVA={override!r} is not an executable java")
        return str(path)
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK) and _java_major(str(candidate)) == PREFERRED_JAVA_MAJOR:
            return str(candidate)
    on_path = shutil.which("java")
    if not on_path:
        raise BrokerError("no 'java' on PATH (Java 17 needed); or set AGENTWIRE_JAVA")
    major = _java_major(on_path)
    if major != PREFERRED_JAVA_MAJOR:
        _log(f"warning: {on_path} is Java {major}, Kafka is run and tested here with "
             f"Java {PREFERRED_JAVA_MAJOR}; set AGENTWIRE_JAVA to choose another")
    return on_path


def free_ports(count: int = 1, host: str = HOST) -> list[int]:
    """Return ``count`` distinct currently-free TCP ports on ``host``."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _resolve_ports(port: int, controller_port: int) -> tuple[int, int]:
    """Replace 0 by free ports (distinct from each other and the given one)."""
    picked = iter(free_ports(3))
    port = port or next(p for p in picked if p != controller_port)
    controller_port = controller_port or next(p for p in picked if p != port)
    if port == controller_port:
        raise BrokerError("--port and --controller-port must differ")
    return port, controller_port


def new_cluster_id() -> str:
    """22-character URL-safe base64 of 16 random bytes (what StorageTool expects).

    Never one that starts with "-" (1 in 64 would): StorageTool's command line takes it for an
    option ("argument --cluster-id/-t: expected one argument"). Kafka's own Uuid.randomUuid()
    draws again in that case too.
    """
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


def _cluster_id(data_dir: Path) -> str:
    """The data dir's cluster id, created once so a restart reuses it."""
    path = data_dir / CLUSTER_ID_FILE
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = new_cluster_id()
    path.write_text(value + "\n")
    return value


def server_properties(
    data_dir: Path, port: int, controller_port: int, *,
    partitions: int = DEFAULT_PARTITIONS, version: str = DEFAULT_KAFKA_VERSION,
) -> str:
    """Render server.properties for a combined broker+controller on 127.0.0.1."""
    lines = [
        "# Generated by deploy/kafka/broker.py -- single-node KRaft test/dev broker.",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        f"controller.quorum.voters={NODE_ID}@{HOST}:{controller_port}",
        f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data_dir / KRAFT_LOG_DIR}",
        "",
        "# single node: every replication factor is 1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "default.replication.factor=1",
        "min.insync.replicas=1",
    ]
    if not _is_legacy(version):
        lines += [
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "share.coordinator.state.topic.num.partitions=1",
        ]
    lines += [
        "",
        "# tests/dev: fast group joins, explicit topic creation",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.num.partitions=1",
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
        "auto.create.topics.enable=false",
        "delete.topic.enable=true",
        f"num.partitions={partitions}",
        "log.retention.hours=24",
        # check retention and compaction every second (default 5 min / 15 s), so that tests with
        # lifetimes of seconds see expired segments deleted and tombstones compacted
        "log.retention.check.interval.ms=1000",
        "log.cleaner.backoff.ms=1000",
        "",
        "# small (2-core) machine",
        "num.network.threads=2",
        "num.io.threads=2",
        "background.threads=2",
        "num.recovery.threads.per.data.dir=1",
        "num.replica.fetchers=1",
        "log.cleaner.threads=1",
        "log.cleaner.dedupe.buffer.size=33554432",
        "",
    ]
    return "\n".join(lines)


def _logging_flags(version: str, data_dir: Path) -> list[str]:
    """JVM system properties that point Kafka's logging at our config."""
    flags = [f"-Dkafka.logs.dir={data_dir}"]
    if _is_legacy(version):
        config = data_dir / LOG4J1_FILE
        config.write_text(LOG4J1_CONFIG_TEXT)
        flags.append(f"-Dlog4j.configuration=file:{config}")
    else:
        flags.append(f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}")
    return flags


def _extra_jvm_flags() -> list[str]:
    """Extra flags from ``$AGENTWIRE_KAFKA_JVM_OPTS`` (shell-split)."""
    return shlex.split(os.environ.get("AGENTWIRE_KAFKA_JVM_OPTS", ""))


def _format_storage(java: str, libs: Path, props: Path, cluster_id: str,
                    logging_flags: Sequence[str]) -> None:
    """``kafka.tools.StorageTool format`` (no-op if already formatted)."""
    cmd = [
        java, *FORMAT_JVM_FLAGS, *logging_flags, "-cp", f"{libs}/*",
        "kafka.tools.StorageTool", "format",
        "-t", cluster_id, "-c", str(props), "--ignore-formatted",
    ]
    proc = subprocess.run(
        cmd, cwd=props.parent, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=120, check=False,
    )
    if proc.returncode != 0:
        output = proc.stdout.decode(errors="replace")
        raise BrokerError(f"storage format failed (exit {proc.returncode}):\n{output[-4000:]}")


# --------------------------------------------------------------------------- #
# Process helpers
# --------------------------------------------------------------------------- #


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our exited child (avoids zombies)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


def _is_kafka_process(pid: int) -> bool:
    """Best-effort check that ``pid`` is a broker (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return _pid_alive(pid) and not Path("/proc/self").exists()
    except OSError:
        return True
    return b"kafka.Kafka\x00" in cmdline


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _remove_state(data_dir: Path) -> None:
    (data_dir / PID_FILE).unlink(missing_ok=True)
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def _write_state(broker: Broker) -> None:
    (broker.data_dir / PID_FILE).write_text(f"{broker.pid}\n")
    tmp = broker.data_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(broker.to_json(), indent=2) + "\n")
    tmp.replace(broker.data_dir / STATE_FILE)


def _port_open(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def _tail_file(path: Path | None, offset: int = 0, lines: int = 40) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _wait_ready(
    proc: subprocess.Popen[bytes], port: int, timeout: float,
    logged_ready: Callable[[], bool], tail: Callable[[], str],
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Block until the log shows READY_MARKER and the port accepts connections.

    Raises BrokerError (with the log tail) if the process exits or the
    timeout expires; the caller is responsible for killing the process.
    """
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise BrokerError(f"broker exited with code {code} before it was ready\n{tail()}")
        if cancelled():
            raise BrokerError("cancelled while waiting for the broker")
        if logged_ready() and _port_open(port):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"broker not ready after {timeout:.0f}s\n{tail()}")
        time.sleep(0.2)


def _kill_now(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- #
# start / stop / status / run
# --------------------------------------------------------------------------- #


def status(data_dir: str | os.PathLike[str]) -> Broker | None:
    """The broker running from ``data_dir``, or None (stale pid files are removed)."""
    data_dir = Path(data_dir).expanduser().resolve()
    pid = _read_pid(data_dir)
    if pid is None:
        return None
    if not (_pid_alive(pid) and _is_kafka_process(pid)):
        _remove_state(data_dir)
        return None
    try:
        return Broker.from_json(json.loads((data_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, KeyError):
        return None


@dataclasses.dataclass
class _Prepared:
    java: str
    cmd: list[str]
    port: int
    controller_port: int
    cluster_id: str
    data_dir: Path


def _prepare(
    data_dir: Path, port: int, controller_port: int, partitions: int, version: str,
    cache_dir: Path | None, java: str | None, jvm_args: Sequence[str],
) -> _Prepared:
    """Fetch, write server.properties, format storage; return the java command."""
    libs = fetch(version, cache_dir=cache_dir)
    java_exe = java or find_java()
    data_dir.mkdir(parents=True, exist_ok=True)
    port, controller_port = _resolve_ports(port, controller_port)
    props = data_dir / PROPERTIES_FILE
    props.write_text(server_properties(
        data_dir, port, controller_port, partitions=partitions, version=version))
    cluster_id = _cluster_id(data_dir)
    logging_flags = _logging_flags(version, data_dir)
    _format_storage(java_exe, libs, props, cluster_id, logging_flags)
    cmd = [
        java_exe, *BROKER_JVM_FLAGS, *logging_flags, *_extra_jvm_flags(), *jvm_args,
        "-cp", f"{libs}/*", "kafka.Kafka", str(props),
    ]
    return _Prepared(java_exe, cmd, port, controller_port, cluster_id, data_dir)


def start(
    data_dir: str | os.PathLike[str],
    port: int = 0,
    controller_port: int = 0,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    log_file: str | os.PathLike[str] | None = None,
    version: str = DEFAULT_KAFKA_VERSION,
    timeout: float = DEFAULT_START_TIMEOUT,
    cache_dir: Path | None = None,
    java: str | None = None,
    jvm_args: Sequence[str] = (),
) -> Broker:
    """Start a detached broker and wait until it serves clients.

    Fetches the jars if needed, writes ``<data_dir>/server.properties``, formats
    the storage (cluster id kept in ``<data_dir>/cluster.id``), starts ``java
    ... kafka.Kafka`` in its own session with stdout+stderr appended to
    ``log_file`` (default ``<data_dir>/broker.log``), writes
    ``<data_dir>/broker.pid`` and ``broker.json``, and waits until the log says
    "Kafka Server started" and the port accepts TCP connections.

    If a broker from ``data_dir`` is already running and ``port`` is 0 or its
    port, that broker is returned. Port 0 means "pick a free port".

    Raises:
        BrokerError: fetch/format failure, broker died, or not ready within
            ``timeout`` seconds (the process is killed in that case).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    running = status(data_dir)
    if running is not None:
        if port in (0, running.port):
            _log(f"already running from {data_dir} (pid {running.pid})")
            return running
        raise BrokerError(
            f"a broker from {data_dir} is already running on port {running.port} "
            f"(pid {running.pid}); stop it first")
    prepared = _prepare(data_dir, port, controller_port, partitions, version,
                        cache_dir, java, jvm_args)
    log_path = Path(log_file).expanduser().resolve() if log_file else data_dir / DEFAULT_LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with open(log_path, "ab") as log_handle:
        offset = log_handle.tell()
        proc = subprocess.Popen(
            prepared.cmd, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=log_handle,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )
    _children[proc.pid] = proc
    broker = Broker(
        bootstrap=f"{HOST}:{prepared.port}", port=prepared.port,
        controller_port=prepared.controller_port, pid=proc.pid, data_dir=data_dir,
        log_file=log_path, version=version, cluster_id=prepared.cluster_id,
    )
    _write_state(broker)

    def logged_ready() -> bool:
        return READY_MARKER in _tail_file(log_path, offset, lines=10**6)

    try:
        _wait_ready(proc, prepared.port, timeout, logged_ready,
                    lambda: f"--- tail of {log_path} ---\n{_tail_file(log_path, offset)}")
    except BaseException:
        _kill_now(proc)
        _children.pop(proc.pid, None)
        _remove_state(data_dir)
        raise
    _log(f"Kafka {version} ready on {broker.bootstrap} (pid {proc.pid}) "
         f"in {time.monotonic() - began:.1f}s; log: {log_path}")
    return broker


def stop(data_dir: str | os.PathLike[str] | Broker,
         timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Stop the broker of ``data_dir`` (or a :class:`Broker`). Idempotent.

    Sends SIGTERM (controlled shutdown), waits up to ``timeout`` seconds, then
    SIGKILLs the process group; removes broker.pid/broker.json. Returns True
    if a running broker was stopped, False if there was nothing to stop.
    """
    if isinstance(data_dir, Broker):
        data_dir = data_dir.data_dir
    data_dir = Path(data_dir).expanduser().resolve()
    pid = _read_pid(data_dir)
    if pid is None or not _pid_alive(pid) or not _is_kafka_process(pid):
        _remove_state(data_dir)
        return False
    began = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = began + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        _log(f"broker pid {pid} still alive after {timeout:.0f}s, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid) and time.monotonic() < deadline + 10:
            time.sleep(0.1)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    _remove_state(data_dir)
    _log(f"stopped broker pid {pid} in {time.monotonic() - began:.1f}s")
    return True


def _parent_death_signal() -> Callable[[], None] | None:
    """preexec_fn that makes Linux SIGTERM the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


def _pump(stream: IO[bytes], sinks: Sequence[IO[bytes]], tail: collections.deque[str],
          ready: threading.Event) -> None:
    """Copy the broker's output line by line to ``sinks``; flag READY_MARKER."""
    for raw in iter(stream.readline, b""):
        for sink in sinks:
            with contextlib.suppress(OSError, ValueError):
                sink.write(raw)
                sink.flush()
        line = raw.decode(errors="replace").rstrip("\n")
        tail.append(line)
        if READY_MARKER in line:
            ready.set()
    stream.close()


def run(
    data_dir: str | os.PathLike[str],
    port: int = 0,
    controller_port: int = 0,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    log_file: str | os.PathLike[str] | None = None,
    version: str = DEFAULT_KAFKA_VERSION,
    timeout: float = DEFAULT_START_TIMEOUT,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    cache_dir: Path | None = None,
    java: str | None = None,
    jvm_args: Sequence[str] = (),
) -> int:
    """Run the broker in the foreground until it exits; return an exit code.

    Meant for process supervisors (honcho) and terminals: the broker's output
    is forwarded to stdout (and appended to ``log_file`` if given), the
    bootstrap line is printed once it is ready, and SIGINT/SIGTERM are
    forwarded to the broker as SIGTERM; if it has not exited ``stop_timeout``
    seconds later (or on a third signal) it is SIGKILLed. The java process
    stays in our process group (honcho signals whole groups) and gets SIGTERM
    from the kernel if this wrapper dies first (Linux PR_SET_PDEATHSIG).
    Must be called from the main thread (installs signal handlers).
    Returns 0 after a signal-initiated stop, else the broker's exit code.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    running = status(data_dir)
    if running is not None:
        raise BrokerError(f"a broker from {data_dir} is already running "
                          f"(pid {running.pid}); stop it first")
    prepared = _prepare(data_dir, port, controller_port, partitions, version,
                        cache_dir, java, jvm_args)

    signals_seen: list[float] = []
    proc: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: object) -> None:
        signals_seen.append(time.monotonic())
        if proc is None or proc.poll() is not None:
            return
        if len(signals_seen) == 1:
            _log(f"{signal.Signals(signum).name} received, stopping broker (SIGTERM)")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL if len(signals_seen) >= 3 else signal.SIGTERM)

    # Install before spawning: handlers (unlike SIG_IGN inherited from a
    # supervisor) are reset to default in the child, so java gets normal signals.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cleanup = contextlib.ExitStack()
    log_handle: IO[bytes] | None = None
    try:
        if log_file:
            log_path = Path(log_file).expanduser().resolve()
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_handle = cleanup.enter_context(open(log_path, "ab"))  # noqa: SIM115
        if signals_seen:  # interrupted during fetch/format: nothing to stop yet
            return 0
        began = time.monotonic()
        proc = subprocess.Popen(
            prepared.cmd, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, close_fds=True,
            # only prctl() runs between fork and exec; no output thread exists yet
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509
        )
        broker = Broker(
            bootstrap=f"{HOST}:{prepared.port}", port=prepared.port,
            controller_port=prepared.controller_port, pid=proc.pid, data_dir=data_dir,
            log_file=Path(log_handle.name) if log_handle else None, version=version,
            cluster_id=prepared.cluster_id,
        )
        _write_state(broker)
        tail: collections.deque[str] = collections.deque(maxlen=40)
        ready = threading.Event()
        sinks = [sys.stdout.buffer] + ([log_handle] if log_handle else [])
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, sinks, tail, ready),
                                name="kafka-output", daemon=True)
        pump.start()
        try:
            _wait_ready(proc, prepared.port, timeout, ready.is_set,
                        lambda: "\n".join(tail), cancelled=lambda: bool(signals_seen))
        except BrokerError as exc:
            if not signals_seen:
                _log(str(exc))
                _kill_now(proc)
                return 1
        else:
            _log(f"Kafka {version} ready on {broker.bootstrap} (pid {proc.pid}) "
                 f"in {time.monotonic() - began:.1f}s")
            print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if signals_seen and time.monotonic() - signals_seen[0] > stop_timeout:
                    _log(f"broker still alive {stop_timeout:.0f}s after SIGTERM, SIGKILL")
                    _kill_now(proc)
        pump.join(timeout=5)
        return 0 if signals_seen else code
    finally:
        if proc is not None and proc.poll() is None:
            _kill_now(proc)
        _remove_state(data_dir)
        cleanup.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker.py",
        description="Fetch (Maven Central) and run a single-node KRaft Apache Kafka "
                    "broker with java -cp, no Docker.",
    )
    parser.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION,
                        help="Kafka version (default: %(default)s; env AGENTWIRE_KAFKA_VERSION)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"jar cache root (default: {default_cache_dir()}; "
                             "env AGENTWIRE_KAFKA_CACHE)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_fetch = sub.add_parser("fetch", help="download the broker jars (skipped when complete)")
    p_fetch.add_argument("--force", action="store_true", help="re-download even if complete")

    for name, help_text in (
        ("start", "start a detached broker and wait until it is ready"),
        ("run", "run the broker in the foreground (for honcho / a terminal)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", type=Path, required=True,
                       help="config, KRaft logs, pid file and broker.log go here")
        p.add_argument("--port", type=int, default=0,
                       help="PLAINTEXT port on 127.0.0.1 (0/omitted: a free port)")
        p.add_argument("--controller-port", type=int, default=0,
                       help="KRaft controller port (0/omitted: a free port)")
        p.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS,
                       help="num.partitions for new topics (default: %(default)s)")
        p.add_argument("--log", type=Path, default=None,
                       help="broker output file (start default: DATA_DIR/broker.log; "
                            "run default: stdout only)")
        p.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT,
                       help="seconds to wait for readiness (default: %(default)s)")
    sub.choices["run"].add_argument(
        "--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT,
        help="seconds between forwarded SIGTERM and SIGKILL (default: %(default)s)")

    p_stop = sub.add_parser("stop", help="stop the broker of a data dir (idempotent)")
    p_stop.add_argument("--data-dir", type=Path, required=True)
    p_stop.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT,
                        help="seconds between SIGTERM and SIGKILL (default: %(default)s)")

    p_status = sub.add_parser("status", help="exit 0 and print the bootstrap if running")
    p_status.add_argument("--data-dir", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    version: str = args.kafka_version
    cache_dir: Path | None = args.cache_dir.expanduser().resolve() if args.cache_dir else None
    try:
        if args.command == "fetch":
            print(fetch(version, cache_dir=cache_dir, force=args.force))
            return 0
        if args.command == "start":
            broker = start(args.data_dir, args.port, args.controller_port,
                           partitions=args.partitions, log_file=args.log, version=version,
                           timeout=args.timeout, cache_dir=cache_dir)
            print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
            return 0
        if args.command == "run":
            return run(args.data_dir, args.port, args.controller_port,
                       partitions=args.partitions, log_file=args.log, version=version,
                       timeout=args.timeout, stop_timeout=args.stop_timeout,
                       cache_dir=cache_dir)
        if args.command == "stop":
            if not stop(args.data_dir, timeout=args.timeout):
                _log(f"no broker running from {args.data_dir}")
            return 0
        if args.command == "status":
            broker = status(args.data_dir)
            if broker is None:
                _log(f"no broker running from {args.data_dir}")
                return 1
            print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}")
            return 0
    except BrokerError as exc:
        _log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
