"""A Centrifugo server beside the edge, reading the same events topic (tests/bench/centrifugo.py).

Centrifugo consumes the topic itself with its Kafka consumer in publication-data mode: each
record's value is published as is into the channels named by its ``centrifugo-channels`` header
(the feeder writes the workflow id there). Clients connect through the unidirectional transports
(``uni_sse``, ``uni_websocket``) with an HS256 connection token whose ``channels`` claim subscribes
them on the server side, so a client does what an EventSource or a plain WebSocket would: connect
and read. The binary comes from ``deploy/centrifugo/fetch_centrifugo.sh`` (``make bench`` runs it).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import jwt

from tests.support.stack import ROOT, free_port
from tests.support.wait import eventually

BINARY = ROOT / ".cache" / "bin" / "centrifugo"
CHANNELS_HEADER = "centrifugo-channels"


class Centrifugo:
    def __init__(self, bootstrap: str, topic: str, workdir: Path) -> None:
        self.port = free_port()
        self.secret = secrets.token_hex(32)
        self.log_path = workdir / "centrifugo.log"
        self.config_path = workdir / "centrifugo.json"
        self.config_path.write_text(json.dumps(self._config(bootstrap, topic), indent=2))
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self, bootstrap: str, topic: str) -> dict[str, object]:
        """Defaults everywhere except what this comparison needs (and no usage reports)."""
        return {
            "http_server": {"address": "127.0.0.1", "port": self.port},
            "log": {"level": "warn"},
            "health": {"enabled": True},
            "usage_stats": {"disabled": True},
            "client": {"token": {"hmac_secret_key": self.secret}},
            "uni_sse": {"enabled": True},
            "uni_websocket": {"enabled": True},
            "consumers": [{
                "name": "agentwire_events",
                "enabled": True,
                "type": "kafka",
                "kafka": {
                    "brokers": [bootstrap],
                    "topics": [topic],
                    "consumer_group": f"bench-centrifugo-{uuid.uuid4().hex[:8]}",
                    "publication_data_mode": {"enabled": True, "channels_header": CHANNELS_HEADER},
                },
            }],
        }

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run deploy/centrifugo/fetch_centrifugo.sh (make bench does)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(BINARY), "--config", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        eventually(self._healthy, timeout, "centrifugo healthy")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"centrifugo exited ({self.process.returncode}): {self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def token(self, user: str, channels: list[str]) -> str:
        """An HS256 connection token that subscribes its connection to ``channels``."""
        claims = {"sub": user, "channels": channels, "exp": int(time.time()) + 3600}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def path(self, protocol: str, token: str) -> str:
        """The request path of a unidirectional connection (``sse`` or ``ws``) with its connect request."""
        connect = urllib.parse.quote(json.dumps({"token": token}, separators=(",", ":")))
        transport = "uni_sse" if protocol == "sse" else "uni_websocket"
        return f"/connection/{transport}?cf_connect={connect}"
