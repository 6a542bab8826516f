"""``agentwire``: a command-line client of the public HTTP API (submit, follow, control tasks)."""
