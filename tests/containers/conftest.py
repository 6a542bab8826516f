"""Fixtures for the container tests: the engine (Docker, or podman set up by deploy/containers/engine.py),
the images `make images` built, and the whole system started from them through testcontainers.

No engine or a stale image is a failure, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.broker import ROOT


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"agentwire_{name}", ROOT / "deploy" / "containers" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def engine() -> Any:
    """The engine that answers, brought up first if it is podman; its client settings go into os.environ."""
    engine_script = _script("engine")
    try:
        engine = engine_script.up()
    except engine_script.EngineError as exc:
        pytest.fail(f"no container engine for the container tests: {exc}")
    os.environ.update(engine.env)
    # testcontainers reads these at import; set them on its configuration too in case it was imported earlier
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    if "TESTCONTAINERS_RYUK_DISABLED" in engine.env:
        testcontainers_config.ryuk_disabled = True
    if "TESTCONTAINERS_CONNECTION_MODE" in engine.env:
        testcontainers_config.connection_mode_override = ConnectionMode(engine.env["TESTCONTAINERS_CONNECTION_MODE"])
    return engine


@pytest.fixture(scope="session")
def images(engine: Any) -> dict[str, str]:
    """This tree's images by their content tags; fails when one is missing (`make images` builds them)."""
    names: dict[str, str] | None = _script("images").current(os.environ.get("AGENTWIRE_IMAGE_TAG", "dev"))
    if names is None:
        pytest.fail("container images are missing or older than this tree: run `make images` (make test does)")
    return names


@pytest.fixture(scope="module")
def containers(images: dict[str, str]) -> Iterator[Any]:
    """The system as containers, for one test module (stopped before the other suites run)."""
    from tests.containers.stack import ContainerStack

    stack = ContainerStack(images)
    with stack.running():
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed container test carries the end of every container's log."""
    report = yield
    if report.failed:
        for name in ("containers", "compose"):
            stack = getattr(item, "funcargs", {}).get(name)
            if stack is not None:
                report.sections.append((f"{name} logs", stack.logs()))
    return report
