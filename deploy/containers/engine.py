#!/usr/bin/env python3
"""One container engine for images, tests and compose: Docker where it answers, else rootful podman.

    python3 deploy/containers/engine.py up       # detect; on podman configure and start its API; print it all
    python3 deploy/containers/engine.py env      # `export NAME=value` lines for the engine that answers
    python3 deploy/containers/engine.py status   # exit 0 and say which engine answers, exit 1 if none
    python3 deploy/containers/engine.py down     # stop the podman API service that `up` started

Where a Docker engine answers (``$DOCKER_HOST`` or /var/run/docker.sock), ``up`` does nothing. Otherwise it
sets up rootful podman the way machines like the development one need, detecting each condition first:

* rlimits: podman asks the runtime for RLIMIT_NOFILE/NPROC limits that only a process with
  CAP_SYS_RESOURCE may set above its own hard limits. The limits podman itself runs with are read from
  a short-lived podman process; when they are lower, containers get them (``default_ulimits``).
* hybrid cgroups (v1 controllers plus a cgroup2 tree at /sys/fs/cgroup/unified): crun refuses them
  ("cgroups in hybrid mode not supported"). Then cgroups are disabled for containers and crun runs
  through a wrapper that hides the cgroup2 tree in a private mount namespace. Memory and CPU limits
  are then NOT enforced.

The settings go into /etc/containers/containers.conf.d/ (so the podman CLI, podman-compose and the API
service all see them) and the API service listens on podman's own socket, /run/podman/podman.sock.
Standard library only: it runs before the project's virtualenv exists. Tests import it (``up()``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_SOCKET = "unix:///var/run/docker.sock"
PODMAN_SOCKET = Path("/run/podman/podman.sock")
STATE_DIR = Path("/run/agentwire-engine")
CONFIG_FILE = Path("/etc/containers/containers.conf.d/50-agentwire-engine.conf")
CRUN_WRAPPER = Path("/usr/local/libexec/agentwire-engine/crun")
# What podman asks the runtime for when nothing else is configured (rootful).
PODMAN_DEFAULTS = {"nofile": 1048576, "nproc": 4194304}
CAP_SYS_RESOURCE = 24


class EngineError(RuntimeError):
    """No usable container engine; the message says what to do."""


@dataclass
class Engine:
    kind: str  # "docker" or "podman"
    host: str  # DOCKER_HOST value of its Docker-compatible API
    version: str
    cli: str  # the command line tool that builds images for it
    env: dict[str, str] = field(default_factory=dict)  # what clients (testcontainers, docker-py) need
    notes: list[str] = field(default_factory=list)  # what `up` found and did


def say(message: str) -> None:
    print(f"engine: {message}", file=sys.stderr, flush=True)


# --- the Docker API, spoken with the standard library --------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def api_version(host: str, timeout: float = 3.0) -> dict | None:
    """The engine's GET /version at a DOCKER_HOST address, or None when nothing answers there."""
    if host.startswith("unix://"):
        conn: http.client.HTTPConnection = _UnixConnection(host.removeprefix("unix://"), timeout)
    elif host.startswith("tcp://"):
        address = host.removeprefix("tcp://")
        name, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(name, int(port), timeout=timeout)
    else:
        return None
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _describe(host: str, version: dict) -> Engine:
    names = [str(version.get("Platform", {}).get("Name", ""))]
    names += [str(component.get("Name", "")) for component in version.get("Components") or []]
    kind = "podman" if any("podman" in name.lower() for name in names) else "docker"
    cli = kind if shutil.which(kind) else ("docker" if shutil.which("docker") else kind)
    return Engine(kind, host, str(version.get("Version", "?")), cli)


def answering() -> Engine | None:
    """The engine that answers now: $DOCKER_HOST, else Docker's socket, else podman's."""
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    candidates += [DOCKER_SOCKET, f"unix://{PODMAN_SOCKET}"]
    for host in candidates:
        version = api_version(host)
        if version is not None:
            engine = _describe(host, version)
            engine.env = client_env(engine)
            return engine
    return None


def client_env(engine: Engine) -> dict[str, str]:
    env = {"DOCKER_HOST": engine.host}
    if engine.kind == "podman":
        # testcontainers' reaper (Ryuk) is an image pulled from a registry; the fixtures remove what they
        # start instead.
        env["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    if engine.host.startswith("unix://") and any(Path(p).exists() for p in ("/.dockerenv", "/run/.containerenv")):
        # This machine looks like a container to testcontainers, which would then look for containers at
        # the bridge gateway; the engine is local, so its published ports are on this host.
        env["TESTCONTAINERS_CONNECTION_MODE"] = "docker_host"
    return env


# --- what this machine allows ---------------------------------------------------------------------


def podman_limits(timeout: float = 30.0) -> dict[str, int]:
    """The hard nofile/nproc limits podman itself runs with here (what its runtime can give a container).

    Podman lowers some of its own limits at start, so they are read from a short-lived podman process.
    """
    probe = STATE_DIR / "probe.sock"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    probe.unlink(missing_ok=True)
    process = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{probe}"], cwd="/",
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not probe.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise EngineError("podman did not start (try `podman info`)")
            time.sleep(0.05)
        limits = {}
        for line in Path(f"/proc/{process.pid}/limits").read_text().splitlines():
            for name, label in (("nofile", "Max open files"), ("nproc", "Max processes")):
                if line.startswith(label):
                    hard = line[len(label):].split()[1]
                    limits[name] = PODMAN_DEFAULTS[name] if hard == "unlimited" else int(hard)
        return limits
    finally:
        process.terminate()
        process.wait()
        probe.unlink(missing_ok=True)


def has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def ulimits() -> tuple[list[str], list[str]]:
    """``default_ulimits`` entries for containers, and why; empty when podman's defaults can be set."""
    entries, notes = [], []
    limits = podman_limits()
    for name, wanted in PODMAN_DEFAULTS.items():
        hard = limits[name]
        if hard < wanted:
            entries.append(f"{name}={hard}:{hard}")
            why = "" if has_capability(CAP_SYS_RESOURCE) else " (no CAP_SYS_RESOURCE)"
            notes.append(f"podman runs with a hard {name} limit of {hard} here and cannot raise it to the "
                         f"{wanted} it asks for{why}: containers get {name}={hard}:{hard}")
    return entries, notes


def cgroup_layout(mountinfo: str | None = None) -> str:
    """'unified' (cgroup v2 only), 'hybrid' (v1 controllers + a v2 tree beside them), 'legacy' or 'none'."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    v1, v2 = False, []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split(" ", 1)[0]
        mount_point = left.split(" ")[4]
        if fstype == "cgroup2":
            v2.append(mount_point)
        elif fstype == "cgroup":
            v1 = True
    if "/sys/fs/cgroup" in v2 and not v1:
        return "unified"
    if v1 and v2:
        return "hybrid"
    return "legacy" if v1 else "none"


WRAPPER_TEXT = """#!/bin/sh
# Written by agentwire's deploy/containers/engine.py: crun refuses hybrid cgroup layouts, so run it in a
# private mount namespace where an empty tmpfs hides the cgroup2 tree at /sys/fs/cgroup/unified.
exec unshare --mount --propagation private sh -c \\
  'mount -t tmpfs agentwire-no-cgroup2 /sys/fs/cgroup/unified && exec {crun} "$@"' crun "$@"
"""


def podman_config() -> tuple[str, str | None, list[str]]:
    """The containers.conf drop-in, the crun wrapper (or None) and notes on why each line is there."""
    entries, notes = ulimits()
    lines = ["# Written by agentwire's deploy/containers/engine.py (see the notes it printed).", "[containers]"]
    if entries:
        lines.append("default_ulimits = [" + ", ".join(f'"{e}"' for e in entries) + "]")
    wrapper = None
    layout = cgroup_layout()
    if layout == "hybrid":
        crun = shutil.which("crun")
        if crun is None:
            raise EngineError("cgroups are hybrid and crun is missing: run `make system-deps`")
        lines += ['cgroups = "disabled"', "", "[engine]", 'runtime = "crun"', "", "[engine.runtimes]",
                  f'crun = ["{CRUN_WRAPPER}"]']
        wrapper = WRAPPER_TEXT.format(crun=crun)
        notes.append("cgroups are hybrid (v1 controllers and a cgroup2 tree at /sys/fs/cgroup/unified), which "
                     f"crun refuses: containers run without cgroups through {CRUN_WRAPPER} "
                     "(memory and CPU limits are NOT enforced)")
    else:
        notes.append(f"cgroup layout is {layout}: podman's defaults apply")
    return "\n".join(lines) + "\n", wrapper, notes


def _write_if_changed(path: Path, text: str, mode: int) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return True


# --- podman's API service ---------------------------------------------------------------------------


def start_service(timeout: float = 30.0) -> int:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    PODMAN_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    PODMAN_SOCKET.unlink(missing_ok=True)
    log = open(STATE_DIR / "service.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{PODMAN_SOCKET}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        # not the caller's directory: the service outlives it, and once that directory is deleted (a git
        # worktree removed) every container it starts fails with "exit status 1"
        cwd="/",
    )
    log.close()
    (STATE_DIR / "service.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while api_version(f"unix://{PODMAN_SOCKET}", timeout=1.0) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (STATE_DIR / "service.log").read_text(errors="replace")[-2000:]
            raise EngineError(f"podman system service did not answer on {PODMAN_SOCKET}:\n{tail}")
        time.sleep(0.1)
    return process.pid


def up() -> Engine:
    """The engine to use, started and configured if it is podman; raises EngineError if there is none."""
    engine = answering()
    if engine is not None and engine.kind == "docker":
        engine.notes.append(f"Docker {engine.version} answers at {engine.host}: nothing to do")
        return engine
    if shutil.which("podman") is None:
        raise EngineError("no Docker engine answers and podman is not installed: run `make system-deps`")
    if os.geteuid() != 0:
        raise EngineError("no Docker engine answers; the podman set-up here is rootful: run this as root")
    notes = ["no Docker engine answers: using rootful podman"]
    conf, wrapper, why = podman_config()
    notes += why
    if wrapper is not None and _write_if_changed(CRUN_WRAPPER, wrapper, 0o755):
        notes.append(f"wrote {CRUN_WRAPPER}")
    if _write_if_changed(CONFIG_FILE, conf, 0o644):
        notes.append(f"wrote {CONFIG_FILE}")
        if engine is not None and down():
            notes.append("stopped the API service it had started before, to load the new settings")
            engine = None
    if engine is None:
        pid = start_service()
        notes.append(f"started `podman system service` (pid {pid}, log {STATE_DIR / 'service.log'}); "
                     f"Docker API at unix://{PODMAN_SOCKET}; stop it with `engine.py down`")
        engine = answering()
        if engine is None:
            raise EngineError(f"podman's API service started but does not answer at {PODMAN_SOCKET}")
    else:
        notes.append(f"podman {engine.version} already answers at {engine.host}")
    engine.notes = notes
    return engine


def down() -> bool:
    pid_file = STATE_DIR / "service.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = []
    stopped = False
    if b"system" in cmdline and b"service" in cmdline:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = True
    pid_file.unlink()
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="up", choices=["up", "env", "status", "down"])
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            say("stopped podman's API service" if down() else "no API service started by this script runs")
            return 0
        engine = up() if args.command == "up" else answering()
        if engine is None:
            say("no container engine answers (run `python3 deploy/containers/engine.py up`)")
            return 1
    except EngineError as exc:
        say(str(exc))
        return 1
    for note in engine.notes:
        say(note)
    if args.command == "status":
        say(f"{engine.kind} {engine.version} answers at {engine.host} (builds with `{engine.cli}`)")
    else:
        for name, value in engine.env.items():
            print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
