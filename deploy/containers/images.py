#!/usr/bin/env python3
"""Build every agentwire image with the engine that answers (``make images``).

    python3 deploy/containers/images.py [--tag dev] [--force] [--check]

Images (names in ``image_names()``): agentwire/agentwire-{ingest,edge,runner,processor,gateway} from the
one ``Dockerfile`` at the repository root, agentwire/kafka (deploy/containers/kafka: Debian's Java 17 and
the Maven artifacts deploy/kafka/broker.py fetches), agentwire/postgres and agentwire/prometheus (Debian's
packages).

Base images: ``BASE_IMAGE`` (Python) and ``DEBIAN_IMAGE`` (for Kafka and Prometheus) when set; otherwise the
official slim images if they are present or can be pulled; otherwise images made here from Debian packages
(deploy/containers/debian_base.py, then deploy/containers/base/Dockerfile for Python).

Each image is also tagged ``<name>-<digest of its inputs>`` (its Dockerfile, the files it copies, its base image's
id): an image whose content tag exists is not built again, and worktrees sharing one machine's image store each
test their own images. ``--check`` builds nothing and exits 1 when an image is missing or stale.
Standard library only, like the engine script.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LABEL = "io.agentwire.inputs"
SERVICES = ("ingest", "edge", "runner", "processor", "gateway")
OFFICIAL_PYTHON = "python:3.11.14-slim-bookworm"
OFFICIAL_DEBIAN = "debian:12.11-slim"
LOCAL_DEBIAN = "agentwire-base/debian:bookworm"
LOCAL_PYTHON = "agentwire-base/python:3.11-bookworm"
KAFKA_VERSION = os.environ.get("AGENTWIRE_KAFKA_VERSION", "4.1.2")
PULL_TIMEOUT_S = 300
KEEP = 8  # content tags kept per image: one per worktree sharing the machine, and a few older ones


def _sibling(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"agentwire_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


engine_script = _sibling("engine")
debian_base = _sibling("debian_base")


def image_names(tag: str = "dev") -> dict[str, str]:
    names = {service: f"agentwire/agentwire-{service}:{tag}" for service in SERVICES}
    names["kafka"] = f"agentwire/kafka:{KAFKA_VERSION}"
    names["prometheus"] = "agentwire/prometheus:2.42"
    names["postgres"] = "agentwire/postgres:15"
    return names


def say(message: str) -> None:
    print(f"images: {message}", flush=True)


@dataclass
class Builder:
    cli: str

    def inspect(self, name: str) -> dict | None:
        result = subprocess.run([self.cli, "image", "inspect", name], capture_output=True, text=True)
        if result.returncode != 0:
            return None
        (info,) = json.loads(result.stdout)
        return info

    def image_id(self, name: str) -> str:
        info = self.inspect(name)
        assert info is not None, name
        return str(info["Id"])

    def label(self, name: str) -> str | None:
        info = self.inspect(name)
        if info is None:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        return labels.get(LABEL)

    def pull(self, name: str) -> bool:
        say(f"trying to pull {name}")
        try:
            result = subprocess.run([self.cli, "pull", "-q", name], capture_output=True, text=True,
                                    timeout=PULL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return False
        if result.returncode != 0:
            say(f"cannot pull {name}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else '?'}")
        return result.returncode == 0

    def prune(self, name: str, keep: int) -> None:
        """Remove all but the ``keep`` newest content tags of ``name`` ("<name>-<digest>")."""
        repository, _, moving = name.rpartition(":")
        listed = subprocess.run([self.cli, "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
                                capture_output=True, text=True).stdout.split()
        tags = {t.removeprefix("localhost/") for t in listed if t.rpartition(":")[2].startswith(f"{moving}-")}
        created = {t: str((self.inspect(t) or {}).get("Created", "")) for t in tags}
        for old in sorted(tags, key=created.__getitem__, reverse=True)[keep:]:
            # an image a container still uses stays; removing it is only housekeeping
            subprocess.run([self.cli, "rmi", old], capture_output=True)

    def tag(self, source: str, target: str) -> None:
        subprocess.run([self.cli, "tag", source, target], check=True, capture_output=True)

    def build(self, name: str, context: Path, dockerfile: Path, digest: str, *, target: str | None = None,
              args: dict[str, str] | None = None, also: tuple[str, ...] = ()) -> None:
        command = [self.cli, "build", "-f", str(dockerfile), "-t", name, "--label", f"{LABEL}={digest}"]
        for extra in also:
            command += ["-t", extra]
        if Path(self.cli).name == "podman":
            command += ["--format", "docker", "--layers"]  # docker format keeps HEALTHCHECK
        if target:
            command += ["--target", target]
        for key, value in (args or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        say(" ".join([*command, str(context)]))
        result = subprocess.run([*command, str(context)], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stdout.write(result.stdout[-6000:] + result.stderr[-6000:])
            raise SystemExit(f"images: building {name} failed")
        say(f"built {name} in {time.monotonic() - started:.0f} s")


def digest_of(paths: list[Path], *extra: str) -> str:
    """A digest of files (by path relative to the repository and content) and extra strings."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


def service_inputs() -> list[Path]:
    """What the service build copies: tracked and new files under libs/ and services/, pins, Dockerfile."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "libs", "services"],
                            capture_output=True, text=True, check=True).stdout.split()
    files = [ROOT / name for name in listed if (ROOT / name).is_file()]
    return files + [ROOT / "Dockerfile", ROOT / ".dockerignore", ROOT / "constraints.txt",
                    ROOT / "requirements" / "runtime.txt", ROOT / "requirements" / "build.txt"]


def kafka_context() -> Path:
    """The Kafka image's build context: the broker's jars (fetched first if needed) and the image's files."""
    spec = importlib.util.spec_from_file_location("agentwire_broker", ROOT / "deploy" / "kafka" / "broker.py")
    assert spec is not None and spec.loader is not None
    broker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(broker)
    libs = broker.fetch(KAFKA_VERSION)
    context = ROOT / ".cache" / "images" / "kafka"
    shutil.rmtree(context, ignore_errors=True)
    (context / "libs").mkdir(parents=True)
    for jar in sorted(libs.glob("*.jar")):
        os.link(jar, context / "libs" / jar.name)
    for source in (HERE / "kafka" / "Dockerfile", HERE / "kafka" / "entrypoint.sh",
                   ROOT / "deploy" / "kafka" / "log4j2.properties"):
        shutil.copy2(source, context / source.name)
    return context


class Images:
    def __init__(self, builder: Builder, tag: str, *, force: bool, check: bool) -> None:
        self.builder, self.tag, self.force, self.check = builder, tag, force, check
        self.names = image_names(tag)
        self.stale: list[str] = []
        self.chosen: dict[str, str] = {}
        self.exact: dict[str, str] = {}  # image: its content tag, "<name>-<inputs digest>"

    def wanted(self, image: str, digest: str) -> bool:
        """Whether ``image`` must be built from inputs with ``digest``; notes its content tag either way.

        Worktrees on one machine share the engine's image store: each test run uses the content tag of its
        own tree, and the plain tag (``names``) points at the last one built or confirmed here.
        """
        exact = self.exact[image] = f"{self.names[image]}-{digest}"
        if not self.force and self.builder.inspect(exact) is not None:
            if not self.check:
                self.builder.tag(exact, self.names[image])
            say(f"{exact} is up to date")
            return False
        self.stale.append(exact)
        return not self.check

    def needed(self, name: str, digest: str) -> bool:
        if not self.force and self.builder.label(name) == digest:
            say(f"{name} is up to date")
            return False
        self.stale.append(name)
        return not self.check

    def base(self, variable: str, official: str, local: str, make_local) -> str:
        """The base image to build on, made here when no registry has one (decided once per run)."""
        if variable not in self.chosen:
            self.chosen[variable] = self._base(variable, official, local, make_local)
            say(f"{variable}={self.chosen[variable]}")
        return self.chosen[variable]

    def _base(self, variable: str, official: str, local: str, make_local) -> str:
        chosen = os.environ.get(variable)
        if chosen:
            if self.builder.inspect(chosen) is None and not self.builder.pull(chosen):
                raise SystemExit(f"images: {variable}={chosen} is neither present nor pullable")
            return chosen
        if self.builder.inspect(official) is not None:
            return official
        if self.builder.inspect(local) is not None:
            make_local()  # rebuilt only when its own inputs changed
            return local
        if not self.check and self.builder.pull(official):
            return official
        make_local()
        return local

    def debian(self) -> str:
        def make() -> None:
            digest = debian_base.inputs_digest(debian_base.debian_mirror())
            if self.needed(LOCAL_DEBIAN, digest):
                debian_base.build(self.builder.cli, LOCAL_DEBIAN, LABEL)

        return self.base("DEBIAN_IMAGE", OFFICIAL_DEBIAN, LOCAL_DEBIAN, make)

    def python(self) -> str:
        def make() -> None:
            debian = self.debian()
            dockerfile = HERE / "base" / "Dockerfile"
            digest = digest_of([dockerfile], self.builder.image_id(debian) if self.builder.inspect(debian) else "")
            if self.needed(LOCAL_PYTHON, digest):
                self.builder.build(LOCAL_PYTHON, dockerfile.parent, dockerfile, digest, args={"DEBIAN_IMAGE": debian})

        return self.base("BASE_IMAGE", OFFICIAL_PYTHON, LOCAL_PYTHON, make)

    def services(self) -> None:
        python = self.python()
        base_id = self.builder.image_id(python) if self.builder.inspect(python) else "missing"
        digest = digest_of(service_inputs(), python, base_id)
        for service in SERVICES:
            if self.wanted(service, digest):
                self.builder.build(self.exact[service], ROOT, ROOT / "Dockerfile", digest, target=service,
                                   args={"BASE_IMAGE": python}, also=(self.names[service],))

    def every(self) -> None:
        self.services()
        self.kafka()
        self.from_debian("postgres")
        self.from_debian("prometheus")

    def kafka(self) -> None:
        self.from_debian("kafka", kafka_context())

    def from_debian(self, image: str, context: Path | None = None) -> None:
        """An image on the Debian base whose build context is a folder (default deploy/containers/<image>)."""
        context = context or HERE / image
        debian = self.debian()
        base_id = self.builder.image_id(debian) if self.builder.inspect(debian) else "missing"
        digest = digest_of([p for p in context.rglob("*") if p.is_file()], debian, base_id)
        if self.wanted(image, digest):
            self.builder.build(self.exact[image], context, context / "Dockerfile", digest,
                               args={"DEBIAN_IMAGE": debian}, also=(self.names[image],))


def current(tag: str = "dev") -> dict[str, str] | None:
    """The content tags of this tree's images, or None when one is missing (the container tests use it)."""
    engine = engine_script.answering()
    if engine is None:
        return None
    images = Images(Builder(engine.cli), tag, force=False, check=True)
    images.every()
    return None if images.stale else images.exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=os.environ.get("AGENTWIRE_IMAGE_TAG", "dev"))
    parser.add_argument("--force", action="store_true", help="build even when the labels match")
    parser.add_argument("--check", action="store_true", help="build nothing; exit 1 if an image is stale")
    args = parser.parse_args(argv)
    try:
        engine = engine_script.up()
    except engine_script.EngineError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for note in engine.notes:
        engine_script.say(note)
    started = time.monotonic()
    images = Images(Builder(engine.cli), args.tag, force=args.force, check=args.check)
    try:
        images.every()
        for name in images.names.values():
            images.builder.prune(name, KEEP)
    except debian_base.BaseImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if images.stale:
            say(f"missing or stale: {', '.join(images.stale)} (run `make images`)")
            return 1
        return 0
    say(f"all images ready with {engine.kind} {engine.version} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
