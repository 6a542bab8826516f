"""Container images and the compose stack, checked statically (tests/containers builds and runs them).

The one Dockerfile is parsed: what it COPYs must exist in the repository and survive .dockerignore, each
service's target must run a console script that the service's pyproject declares, the shared runtime
stage must run as a numeric non-root user on the BASE_IMAGE argument. deploy/compose/docker-compose.yml
must run the images `make images` builds and mount files that exist.
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


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    path = REPO / "Dockerfile"
    assert path.is_file(), f"{path} is missing"
    return instructions(path)


def stages(dockerfile: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by its name (FROM ... AS name)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, args in dockerfile:
        if word == "FROM":
            current = [(word, args)]
            out[args.split()[-1] if " AS " in args.upper() else args] = current
        elif current:
            current.append((word, args))
    return out


@pytest.fixture(scope="module", params=IMAGES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
                assert any(p.endswith("/pyproject.toml") for p in kept), f"COPY {src}: no pyproject.toml in context"
                assert any(p.endswith(".py") and "/src/" in p for p in kept), f"COPY {src}: no sources in the context"
            copied += 1
    assert copied >= 3


def test_every_service_has_a_target_running_its_console_script(service: str, dockerfile: list[tuple[str, str]]) -> None:
    target = stages(dockerfile)[service]
    assert target[0][1].split()[0] == "runtime", f"target {service} builds on the shared runtime stage"
    (entrypoint,) = [exec_form(a) for w, a in target if w == "ENTRYPOINT"]
    scripts = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == [f"agentwire-{service}"] and entrypoint[0] in scripts
    (expose,) = [a for w, a in target if w == "EXPOSE"]
    assert int(expose) == PORTS[service]
    env = " ".join(a for w, a in target if w == "ENV")
    if PORTS[service] != 8080:  # the health check reads the port from the service's own setting
        assert f"HEALTH_PORT={PORTS[service]}" in env and f"AGENTWIRE_{service.upper()}__OPS_PORT" in env


def test_one_venv_with_every_service_installed_with_the_constraints(dockerfile: list[tuple[str, str]]) -> None:
    runs = " ".join(a for w, a in stages(dockerfile)["builder"] if w == "RUN")
    assert "-c constraints.txt" in runs and "/opt/venv" in runs and "./libs" in runs
    for service in IMAGES:
        assert f"./services/{service}" in runs


def test_runtime_stage(dockerfile: list[tuple[str, str]]) -> None:
    args = dict(a.split("=", 1) for w, a in dockerfile if w == "ARG" and "=" in a)
    assert PYTHON_BASE.fullmatch(args["BASE_IMAGE"]), "default base: an exact python 3.11 slim-bookworm"
    named = stages(dockerfile)
    for name in ("builder", "runtime"):
        assert named[name][0][1].split()[0] == "${BASE_IMAGE}", f"stage {name} builds on the BASE_IMAGE argument"
    runtime = named["runtime"]
    assert [a for w, a in runtime if w == "COPY"] == ["--from=builder /opt/venv /opt/venv"], "only the venv"
    (user,) = [a for w, a in runtime if w == "USER"]
    uid = user.split(":")[0]
    assert uid == "10001", "numeric non-root USER: the helm chart's securityContext runs as 10001"
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env and "AGENTWIRE_HTTP__HOST=0.0.0.0" in env
    (health,) = [a for w, a in runtime if w == "HEALTHCHECK"]
    assert "/health" in health and "urllib" in health and "HEALTH_PORT_SETTING" in health


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


def test_compose_runs_the_images_make_images_builds(compose: dict[str, Any]) -> None:
    built = {f"agentwire/agentwire-{name}:${{AGENTWIRE_IMAGE_TAG:-dev}}" for name in IMAGES}
    built |= {"agentwire/kafka:4.1.2", "agentwire/prometheus:2.42", "agentwire/postgres:15"}
    images = {name: svc["image"] for name, svc in compose["services"].items()}
    assert all("build" not in svc for svc in compose["services"].values()), "images come from `make images`"
    assert built == {image for name, image in images.items() if name != "grafana"}
    script = (REPO / "deploy" / "containers" / "images.py").read_text()
    for image in ('f"agentwire/agentwire-{service}:{tag}"', '"agentwire/prometheus:2.42"', '"agentwire/postgres:15"'):
        assert image in script
    assert images["grafana"].startswith("grafana/grafana:") and not images["grafana"].endswith(":latest")
    assert compose["services"]["grafana"]["profiles"] == ["grafana"], "Grafana only where its image can be had"
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://" in advertised and "PLAINTEXT://kafka:9092" in advertised


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


def test_k8s_build_script_is_valid_bash() -> None:
    script = REPO / "deploy" / "k8s" / "build.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "go build" in text and "[helm]=helm.sh/helm/v3/cmd/helm" in text
