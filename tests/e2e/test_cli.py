"""The ``agentwire`` command line client as a subprocess against the running stack."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.e2e.conftest import AuthStack
from tests.support.stack import Stack
from tests.support.wait import eventually

AGENTWIRE = str(Path(sys.executable).parent / "agentwire")
AGENTS = {"research-agent", "analysis-agent", "writer-agent"}


def cli(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTWIRE_URL": stack.base_url}
    return subprocess.run([AGENTWIRE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_submit_follow_plain_lines(stack: Stack) -> None:
    done = cli(stack, "submit", "Research AI trends from the CLI", "--mode", "standard",
               "--context", '{"speed": 20}', "--follow")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("submitted task-")
    workflow_id = lines[0].split()[1]
    kinds = [line.split()[1] for line in lines[1:] if line.strip()[:1].isdigit()]
    assert kinds[0] == "WORKFLOW_STARTED" and kinds[-1] == "WORKFLOW_COMPLETED"
    assert "LLM_PARTIAL" not in kinds and kinds.count("LLM_OUTPUT") == 3
    assert "status: completed" in lines
    assert any(line.split()[1:2] == ["PROGRESS"] and line.endswith("[100.0%]") for line in lines[1:])

    status = cli(stack, "status", workflow_id)
    assert status.returncode == 0 and "status    completed  progress 100%" in status.stdout
    listing = cli(stack, "tasks", "--limit", "50")
    assert listing.returncode == 0 and any(line.startswith(workflow_id) for line in listing.stdout.splitlines())


def test_stream_json_lines_are_complete_and_ordered(stack: Stack) -> None:
    submitted = cli(stack, "submit", "JSON please", "--context", '{"speed": 20}')
    assert submitted.returncode == 0, submitted.stderr
    workflow_id = submitted.stdout.strip()
    streamed = cli(stack, "stream", workflow_id, "--json")
    assert streamed.returncode == 0, streamed.stderr
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "WORKFLOW_COMPLETED"
    assert {e["agent_id"] for e in events if e.get("agent_id")} >= AGENTS
    deltas = "".join(e["message"] for e in events if e["type"] == "LLM_PARTIAL" and e["agent_id"] == "writer-agent")
    completed = [e for e in events if e["type"] == "LLM_OUTPUT" and e["agent_id"] == "writer-agent"]
    assert deltas == completed[-1]["message"] and completed[-1]["payload"]["tokens_used"] > 0

    only = cli(stack, "stream", workflow_id, "--json", "--types", "AGENT_STARTED")
    assert only.returncode == 0
    assert [json.loads(line)["agent_id"] for line in only.stdout.splitlines()] == sorted(AGENTS, key=[
        "research-agent", "analysis-agent", "writer-agent"].index)


def test_control_commands_and_failed_exit_code(stack: Stack) -> None:
    workflow_id = cli(stack, "submit", "Pause me", "--context", '{"speed": 0.2}').stdout.strip()
    paused = cli(stack, "pause", workflow_id)
    assert paused.returncode == 0, paused.stderr
    again = cli(stack, "pause", workflow_id)
    assert again.returncode == 2 and "HTTP 409" in again.stderr
    assert cli(stack, "resume", workflow_id).returncode == 0
    assert cli(stack, "cancel", workflow_id).returncode == 0
    followed = cli(stack, "stream", workflow_id)
    assert followed.returncode == 1 and "status: cancelled" in followed.stdout
    missing = cli(stack, "status", "task-does-not-exist")
    assert missing.returncode == 2 and "404" in missing.stderr


def test_approve_and_deny(stack: Stack) -> None:
    context = '{"speed": 20, "require_approval": true}'
    approved = cli(stack, "submit", "Approve me", "--mode", "simple", "--context", context).stdout.strip()
    follower = subprocess.Popen([AGENTWIRE, "stream", approved], env={**os.environ, "AGENTWIRE_URL": stack.base_url},
                                stdout=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    for line in follower.stdout:  # the request shows its description and id, not the JSON text
        if "APPROVAL_REQUESTED" in line:
            assert "Approval requested for the plan [approval-" in line, line
            break
    answer = cli(stack, "approve", approved, "--feedback", "fine")
    assert answer.returncode == 0 and answer.stdout.startswith("Approved approval-"), answer.stderr
    rest, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "status: completed" in rest
    assert "Plan approved: fine" in rest
    again = cli(stack, "approve", approved)
    assert again.returncode == 2 and "no pending approval" in again.stderr

    denied = cli(stack, "submit", "Deny me", "--mode", "simple", "--context", context).stdout.strip()
    status = eventually(lambda: (s := json.loads(cli(stack, "status", denied, "--json").stdout))["approvals"] and s,
                        30, "approval requested")
    approval_id = status["approvals"][0]["approval_id"]
    no = cli(stack, "approve", denied, "--approval-id", approval_id, "--deny", "--feedback", "not now", "--json")
    assert no.returncode == 0 and json.loads(no.stdout)["approved"] is False
    followed = cli(stack, "stream", denied)
    assert followed.returncode == 1 and "status: failed" in followed.stdout and "not now" in followed.stdout


def test_follow_renders_a_live_view_in_a_terminal(stack: Stack) -> None:
    primary, secondary = pty.openpty()
    env = {**os.environ, "AGENTWIRE_URL": stack.base_url, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    process = subprocess.Popen([AGENTWIRE, "submit", "Research AI trends on a TTY", "--context", '{"speed": 10}',
                                "--follow"], stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    output = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    text = output.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "\x1b[" in text, "no terminal rendering"
    assert "━" in text and "100%" in text
    for agent in AGENTS:
        assert agent in text
    assert "status: completed" in text


class DroppingProxy:
    """A TCP proxy to the gateway that cuts the ``cut_request``-th stream request after ``cut_after`` bytes."""

    def __init__(self, target_port: int, cut_after: int, cut_request: int = 1) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cut_request = cut_request
        self.streams = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.pipe, args=(client,), daemon=True).start()

    def pipe(self, client: socket.socket) -> None:
        try:
            self.forward(client, socket.create_connection(("127.0.0.1", self.target_port)))
        except OSError:  # either side reset the connection (e.g. a closed EventSource)
            client.close()

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        cut, sent = False, 0
        with client, upstream:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                source = ready[0]
                data = source.recv(65536)
                if not data:
                    return
                if source is upstream:
                    if cut and sent + len(data) > self.cut_after:
                        client.sendall(data[: self.cut_after - sent])
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return  # RST: an abrupt drop mid-stream
                    sent += len(data)
                    client.sendall(data)
                else:  # a request: keep-alive connections carry several, so look at each
                    with self.lock:
                        if b"GET /api/v1/stream/sse" in data:
                            self.streams += 1
                            if self.streams == self.cut_request:
                                cut, sent = True, 0
                                self.cuts += 1
                    upstream.sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_stream_resumes_after_a_dropped_connection(stack: Stack) -> None:
    workflow_id = cli(stack, "submit", "Survive a drop", "--context", '{"speed": 4}').stdout.strip()
    gateway_port = int(stack.base_url.rsplit(":", 1)[1])
    proxy = DroppingProxy(gateway_port, cut_after=1500)
    try:
        env = {**os.environ, "AGENTWIRE_URL": f"http://127.0.0.1:{proxy.port}"}
        streamed = subprocess.run([AGENTWIRE, "stream", workflow_id, "--json"], env=env, capture_output=True,
                                  text=True, timeout=60, check=False)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert streamed.returncode == 0, streamed.stderr
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "lost or duplicated across the drop"
    assert events[-1]["type"] == "WORKFLOW_COMPLETED"


def test_api_key_from_the_environment(auth_stack: AuthStack) -> None:
    env = {**os.environ, "AGENTWIRE_URL": auth_stack.base_url}
    command = [AGENTWIRE, "submit", "Authenticated CLI task", "--mode", "simple", "--context", '{"speed": 20}',
               "--follow", "--json"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr
    env["AGENTWIRE_API_KEY"] = auth_stack.key_a
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["type"] == "WORKFLOW_COMPLETED"


def test_sessions(stack: Stack) -> None:
    session_id = f"s-cli-{os.getpid()}-{int(time.time() * 1000)}"
    context = '{"speed": 20}'
    first = cli(stack, "submit", "Kafka basics", "--mode", "simple", "--session-id", session_id, "--context", context,
                "--follow").returncode
    assert first == 0
    listed = cli(stack, "sessions")
    assert listed.returncode == 0 and session_id in listed.stdout and "Kafka basics" in listed.stdout
    assert cli(stack, "sessions", "rename", session_id, "Kafka notes").stdout.strip() == f"renamed {session_id}"
    shown = cli(stack, "sessions", "show", session_id)
    assert shown.returncode == 0 and "Kafka notes" in shown.stdout and "completed" in shown.stdout
    assert json.loads(cli(stack, "sessions", "show", session_id, "--json").stdout)["task_count"] == 1
    assert cli(stack, "sessions", "delete", session_id).stdout.strip() == f"deleted {session_id}"
    gone = cli(stack, "sessions", "show", session_id)
    assert gone.returncode == 2 and "404" in gone.stderr
    assert cli(stack, "sessions", "show").returncode == 2
