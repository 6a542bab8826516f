"""The deploy/ scripts (standard library only, run before any virtualenv) loaded as modules by the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str, name: str) -> ModuleType:
    """Import ``<repo>/<relative>`` (e.g. deploy/kafka/broker.py) under the module name ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: dataclasses look their module up while the class is built.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
