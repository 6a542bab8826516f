"""The garbage collector's settings for a process that holds many clients.

An edge holds thousands of long-lived objects per thousand clients (connections, sessions, recent
events). With CPython's default thresholds (700, 10, 10) the full collections that this churn sets off
traverse all of them: measured on the 500-workflow benchmark, 14 full collections per round of 1,000
clients, each up to 390 ms, a third of the edge's CPU, and the steady-rate p99 (docs/edge.md). Two
changes, each measured there:

- what start-up built (modules, models, settings) is frozen out of every later collection;
- the thresholds are raised so that full collections come about ten times less often; young
  collections stay short (≈ 2,000 objects each).
"""

from __future__ import annotations

import gc

THRESHOLDS = (2000, 10, 100)


def settle() -> None:
    """Freeze what exists now and raise the collection thresholds (once, when the service has started)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
