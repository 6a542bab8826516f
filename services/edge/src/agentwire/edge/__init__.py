"""edge: serves SSE and WebSocket clients from the events topic."""
