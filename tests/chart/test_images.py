"""Container images and the compose stack, checked without a Docker engine.

Each services/<name>/Dockerfile is parsed: what it COPYs must exist in the repository and survive
.dockerignore, its ENTRYPOINT must be a console script that the service's pyproject declares, it
must run as a numeric non-root user from a pinned base image. deploy/compose/docker-compose.yml
must build from Dockerfiles that exist and mount files that exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
IMAGES = ("ingest", "edge", "runner", "processor", "gateway")
PORTS = {"ingest": 8080, "edge": 8080, "runner": 9101, "processor": 9102, "gateway": 8080}
PYTHON_BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{dockerfile}: dangling line continuation"
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not an exec-form array: {args}"
    return value


def copy_sources(args: str) -> list[str] | None:
    """Sources of a COPY/ADD from the build context; None when it copies from another stage."""
    words = exec_form(args) if args.startswith("[") else shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    if any(f.startswith("--from=") for f in flags):
        return None
    paths = [w for w in words if not w.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {args}"
    return paths[:-1]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((negate, _glob_regex(pattern)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether .dockerignore keeps `path` (or a folder holding it) out of the build context."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            result = not negate
    return result


@pytest.fixture(scope="module", params=IMAGES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def dockerfile(service: str) -> list[tuple[str, str]]:
    path = REPO / "services" / service / "Dockerfile"
    assert path.is_file(), f"{path} is missing"
    return instructions(path)


def test_copy_sources_exist_and_are_in_the_build_context(dockerfile: list[tuple[str, str]]) -> None:
    rules = dockerignore_rules()
    copied = 0
    for word, args in dockerfile:
        if word not in ("COPY", "ADD"):
            continue
        sources = copy_sources(args)
        if sources is None:
            continue
        for src in sources:
            path = REPO / src
            assert path.exists(), f"COPY {src}: no such file or folder in the repository"
            rel = path.relative_to(REPO).as_posix()
            assert not ignored(rel, rules), f"COPY {src}: excluded by .dockerignore"
            if path.is_dir():
                kept = [p.relative_to(REPO).as_posix() for p in path.rglob("*") if p.is_file()]
                kept = [p for p in kept if not ignored(p, rules)]
                assert f"{rel.rstrip('/')}/pyproject.toml" in kept, f"COPY {src}: pyproject.toml is not in the context"
                assert any(p.endswith(".py") and "/src/" in p for p in kept), f"COPY {src}: no sources in the context"
            copied += 1
    assert copied >= 3


def test_entrypoint_is_a_declared_console_script(service: str, dockerfile: list[tuple[str, str]]) -> None:
    entrypoints = [exec_form(a) for w, a in dockerfile if w == "ENTRYPOINT"]
    commands = [exec_form(a) for w, a in dockerfile if w == "CMD"]
    assert entrypoints, "ENTRYPOINT missing (exec form)"
    scripts = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["scripts"]
    program = entrypoints[-1][0]
    assert program == f"agentwire-{service}"
    assert program in scripts, f"{program} is not in services/{service}/pyproject.toml [project.scripts]"
    for command in commands:
        assert not command or command[0].startswith("-") or command[0] in scripts


def test_installs_the_service_with_the_constraints(service: str, dockerfile: list[tuple[str, str]]) -> None:
    runs = " ".join(a for w, a in dockerfile if w == "RUN")
    assert "-c constraints.txt" in runs
    assert f"./services/{service}" in runs and "./libs" in runs
    assert "/opt/venv" in runs


def test_runtime_stage(service: str, dockerfile: list[tuple[str, str]]) -> None:
    args = dict(a.split("=", 1) for w, a in dockerfile if w == "ARG" and "=" in a)
    stages = [a for w, a in dockerfile if w == "FROM"]
    assert len(stages) >= 2, "multi-stage build expected"
    for stage in stages:
        image = stage.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert PYTHON_BASE.fullmatch(image), f"base image not pinned to an exact python 3.11 slim-bookworm: {image}"
    final = dockerfile[max(i for i, (w, _) in enumerate(dockerfile) if w == "FROM"):]
    final_copies = [a for w, a in final if w == "COPY"]
    assert final_copies == ["--from=builder /opt/venv /opt/venv"], "the final stage copies only the venv"
    (user,) = [a for w, a in final if w == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (Kubernetes runAsNonRoot checks it)"
    assert uid == "10001", "the helm chart's securityContext runs as 10001"
    env = " ".join(a for w, a in final if w == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env and "AGENTWIRE_HTTP__HOST=0.0.0.0" in env
    (expose,) = [a for w, a in final if w == "EXPOSE"]
    assert int(expose) == PORTS[service]
    (health,) = [a for w, a in final if w == "HEALTHCHECK"]
    assert "/health" in health and "urllib" in health and f"'{PORTS[service]}'" in health


def test_dockerignore_keeps_local_state_out() -> None:
    rules = dockerignore_rules()
    for path in (".venv/bin/python", ".cache/bin/helm", ".data/processor/x", ".git/HEAD",
                 "libs/src/agentwire/__pycache__/x.pyc", ".pytest_cache/v"):
        assert ignored(path, rules), path
    for path in ("constraints.txt", "requirements/runtime.txt", "libs/pyproject.toml",
                 "services/edge/src/agentwire/edge/app.py"):
        assert not ignored(path, rules), path


# --- compose -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_builds_from_existing_dockerfiles(compose: dict[str, Any]) -> None:
    built = {}
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        context = (COMPOSE.parent / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"compose service {name}: {dockerfile} does not exist"
        assert context == REPO, f"compose service {name}: the build context is the repository root"
        entry = svc.get("entrypoint")
        if entry:
            program = entry[0] if isinstance(entry, list) else entry.split()[0]
            service_dir = dockerfile.parent
            scripts = tomllib.loads((service_dir / "pyproject.toml").read_text())["project"]["scripts"]
            assert program in scripts
        built[name] = dockerfile
    assert {"ingest", "edge", "runner", "processor", "gateway"} <= built.keys()


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.2"
    env = compose["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"compose service {name}: {source} does not exist"


def test_compose_dev_key() -> None:
    keys = yaml.safe_load((COMPOSE.parent / "keys.yaml").read_text())["keys"]
    assert hashlib.sha256(b"dev-key-123").hexdigest() in {k["sha256"] for k in keys}
    assert "dev-key-123" in COMPOSE.read_text(), "the compose file documents the dev key"


def test_grafana_provisioning() -> None:
    provisioning = COMPOSE.parent / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "agentwire.yml").read_text())["providers"]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2][::-1] for v in grafana["volumes"])
    assert (COMPOSE.parent / mounts[provider["options"]["path"]]).resolve() == REPO / "deploy" / "grafana"


def test_fetch_helm_script_is_valid_bash() -> None:
    script = REPO / "deploy" / "helm" / "fetch_helm.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "go install" in text and 'module="helm.sh/helm/v3"' in text and "/cmd/helm@" in text
