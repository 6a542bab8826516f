"""gateway: the local stack's one base URL, ingest and edge composed in one server."""
