"""One real control plane for the whole tests/k8s session (started in a temp dir, stopped at the end).

A missing control-plane build fails the run (build it with `make k8s-test` / deploy/k8s/build.sh);
it is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.k8s.cluster import Cluster, controlplane_script


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    script = controlplane_script()
    try:
        plane = script.start(tmp_path_factory.mktemp("k8s"))
    except script.ControlPlaneError as exc:
        pytest.fail(f"no Kubernetes control plane for the chart tests: {exc}", pytrace=False)
    try:
        yield Cluster(plane)
    finally:
        script.stop(plane)
