"""ingest: the task REST API (submit, status, list, events, control)."""
