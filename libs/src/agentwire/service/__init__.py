"""Service plumbing: settings, lifecycle and operational routes."""

from agentwire.service.lifecycle import configure_logging, fix_malloc_mmap_threshold, run, serve
from agentwire.service.ops import add_ops_routes, ops_app
from agentwire.service.settings import Settings, load_settings

__all__ = [
    "Settings", "add_ops_routes", "configure_logging", "fix_malloc_mmap_threshold", "load_settings", "ops_app", "run",
    "serve",
]
