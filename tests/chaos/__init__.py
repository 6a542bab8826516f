"""``make chaos``: the fault script of TARGETS.md (Reliability)."""
