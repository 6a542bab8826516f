"""Entry point: ``agentwire`` — parse arguments and hand off to the API client and a renderer."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rich.console import Console

from agentwire.cli.client import TERMINAL, Api, ApiError
from agentwire.cli.render import JsonLines, LiveView, PlainLines, Renderer

DEFAULT_URL = "http://127.0.0.1:8080"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="agentwire", description="Client of the agentwire HTTP API.")
    root.add_argument("--base-url", default=os.environ.get("AGENTWIRE_URL", DEFAULT_URL),
                      help="API base URL (env AGENTWIRE_URL, default %(default)s)")
    root.add_argument("--api-key", default=os.environ.get("AGENTWIRE_API_KEY"), help="API key (env AGENTWIRE_API_KEY)")
    commands = root.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit a task")
    submit.add_argument("query")
    submit.add_argument("--mode", choices=["simple", "standard", "complex", "supervisor"])
    submit.add_argument("--session-id")
    submit.add_argument("--context", type=json.loads, default=None, help='task context as JSON, e.g. \'{"speed": 4}\'')
    submit.add_argument("--follow", "-f", action="store_true", help="stream the task's events until it ends")
    submit.add_argument("--json", action="store_true", help="JSON output (one event per line when following)")

    stream = commands.add_parser("stream", help="stream a task's events until it ends")
    stream.add_argument("workflow_id")
    stream.add_argument("--types", help="comma-separated event types to keep")
    stream.add_argument("--json", action="store_true", help="one event per line as JSON")

    for name, text in (("status", "show a task"), ("cancel", "cancel a task"), ("pause", "pause a task"),
                       ("resume", "resume a paused task")):
        command = commands.add_parser(name, help=text)
        command.add_argument("workflow_id")
        command.add_argument("--json", action="store_true")

    approve = commands.add_parser("approve", help="approve (or --deny) a task's pending approval request")
    approve.add_argument("workflow_id")
    approve.add_argument("--approval-id", help="which approval (default: the task's pending one)")
    approve.add_argument("--deny", action="store_true", help="deny instead of approve (the task then fails)")
    approve.add_argument("--feedback", help="a note for the workflow and the stream")
    approve.add_argument("--json", action="store_true")

    sessions = commands.add_parser("sessions", help="list sessions, or show, rename or delete one")
    sessions.add_argument("action", nargs="?", default="list", choices=["list", "show", "rename", "delete"])
    sessions.add_argument("session_id", nargs="?")
    sessions.add_argument("title", nargs="?", help="the new title (rename)")
    sessions.add_argument("--limit", type=int, default=20)
    sessions.add_argument("--json", action="store_true")

    tasks = commands.add_parser("tasks", help="list recent tasks")
    tasks.add_argument("--limit", type=int, default=20)
    tasks.add_argument("--status")
    tasks.add_argument("--json", action="store_true")
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    api = Api(args.base_url, args.api_key)
    try:
        sys.exit(run(api, args))
    except ApiError as error:
        print(f"agentwire: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        api.close()


def run(api: Api, args: argparse.Namespace) -> int:
    if args.command == "submit":
        body: dict[str, Any] = {"query": args.query, "context": args.context, "mode": args.mode,
                                "session_id": args.session_id}
        task = api.call("POST", "/api/v1/tasks", {k: v for k, v in body.items() if v is not None})
        if not args.follow:
            print(json.dumps(task) if args.json else task["workflow_id"])
            return 0
        if not args.json:
            print(f"submitted {task['workflow_id']}", flush=True)
        return follow(api, task["workflow_id"], None, args.json)
    if args.command == "stream":
        return follow(api, args.workflow_id, args.types, args.json)
    if args.command == "status":
        task = api.call("GET", f"/api/v1/tasks/{args.workflow_id}")
        print(json.dumps(task, indent=2) if args.json else describe(task))
        return 0
    if args.command == "tasks":
        listing = api.call("GET", "/api/v1/tasks", limit=args.limit, status=args.status)
        if args.json:
            print(json.dumps(listing))
        for task in [] if args.json else listing["tasks"]:
            print(f"{task['task_id']}  {short(task['status']):<10} {task.get('mode') or '-':<9} {task['query'][:50]}")
        return 0
    if args.command == "approve":
        return approve(api, args)
    if args.command == "sessions":
        return sessions(api, args)
    reply = api.call("POST", f"/api/v1/tasks/{args.workflow_id}/{args.command}", {})
    print(json.dumps(reply) if args.json else reply.get("message", args.command))
    return 0 if reply.get("success", True) else 1


def approve(api: Api, args: argparse.Namespace) -> int:
    approval_id = args.approval_id
    if approval_id is None:
        task = api.call("GET", f"/api/v1/tasks/{args.workflow_id}")
        pending = [a for a in task.get("approvals") or [] if a.get("status") == "pending"]
        if not pending:
            print(f"agentwire: {args.workflow_id} has no pending approval", file=sys.stderr)
            return 2
        approval_id = pending[-1]["approval_id"]
    body: dict[str, Any] = {"approval_id": approval_id, "workflow_id": args.workflow_id, "approved": not args.deny}
    if args.feedback:
        body["feedback"] = args.feedback
    reply = api.call("POST", "/api/v1/approvals/decision", body)
    print(json.dumps(reply) if args.json else f"{'Denied' if args.deny else 'Approved'} {approval_id}")
    return 0


def sessions(api: Api, args: argparse.Namespace) -> int:
    if args.action == "list":
        listing = api.call("GET", "/api/v1/sessions", limit=args.limit)
        if args.json:
            print(json.dumps(listing))
            return 0
        for s in listing["sessions"]:
            title = s.get("title") or s.get("latest_task_query") or ""
            print(f"{s['session_id']}  {s['task_count']:>3} tasks  {s['tokens_used']:>7} tokens  {title[:50]}")
        return 0
    if not args.session_id:
        print(f"agentwire: sessions {args.action} needs a session id", file=sys.stderr)
        return 2
    path = f"/api/v1/sessions/{args.session_id}"
    if args.action == "rename":
        if not args.title:
            print("agentwire: sessions rename needs a title", file=sys.stderr)
            return 2
        reply = api.call("PATCH", path, {"title": args.title})
    elif args.action == "delete":
        reply = api.call("DELETE", path)
    else:
        session = api.call("GET", path)
        history = api.call("GET", f"{path}/history")
        if args.json:
            print(json.dumps({**session, "tasks": history["tasks"]}))
            return 0
        print(f"session   {session['session_id']}  {session.get('title') or ''}".rstrip())
        print(f"tasks     {session['task_count']}   tokens {session['tokens_used']}   cost ${session['cost_usd']}")
        for n, task in enumerate(history["tasks"], start=1):
            print(f"{n:>3}. {task['task_id']}  {short(task['status']):<10} {task['query'][:60]}")
        return 0
    print(json.dumps(reply) if args.json else f"{args.action}d {args.session_id}")  # renamed, deleted
    return 0


def follow(api: Api, workflow_id: str, types: str | None, as_json: bool) -> int:
    """Stream until the end, then report the final status; exit 0 only if the task completed."""
    renderer: Renderer
    if as_json:
        renderer = JsonLines(sys.stdout)
    elif sys.stdout.isatty():
        renderer = LiveView(Console(), workflow_id)
    else:
        renderer = PlainLines(sys.stdout)
    with renderer:
        for event in api.stream(workflow_id, types):
            renderer.event(event)
    task = api.wait_terminal(workflow_id)
    if not as_json:
        print(f"status: {short(task['status'])}" + (f" — {task['error']}" if task.get("error") else ""))
        if task.get("result"):
            print(task["result"])
    return 0 if task["status"] == "TASK_STATUS_COMPLETED" else 1 if task["status"] in TERMINAL else 3


def short(status: str) -> str:
    return status.removeprefix("TASK_STATUS_").lower()


def describe(task: dict[str, Any]) -> str:
    usage = task.get("usage") or {}
    lines = [
        f"task      {task['task_id']}",
        f"status    {short(task['status'])}  progress {round(100 * float(task.get('progress') or 0))}%",
        f"query     {task.get('query')}",
        f"mode      {task.get('mode')}   session {task.get('session_id')}",
        f"tokens    {usage.get('total_tokens', 0)}   cost ${usage.get('estimated_cost', 0)}",
    ]
    if task.get("result"):
        lines.append(f"result    {task['result']}")
    if task.get("error"):
        lines.append(f"error     {task['error']}")
    return "\n".join(lines)
