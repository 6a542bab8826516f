"""The web dashboard in a real browser (Debian's chromium, headless, driven by Playwright)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import AuthStack
from tests.e2e.test_cli import DroppingProxy
from tests.support.stack import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def proxy(stack: Stack, request: pytest.FixtureRequest) -> Iterator[DroppingProxy]:
    """The page goes through a proxy that can cut an event stream mid-way (a real drop, as a server's)."""
    cut_request = 2 if "dropped" in request.node.name else 0
    proxy = DroppingProxy(int(stack.base_url.rsplit(":", 1)[1]), cut_after=4000, cut_request=cut_request)
    yield proxy
    proxy.close()


@pytest.fixture
def page(browser: Browser, proxy: DroppingProxy) -> Iterator[Page]:
    base_url = f"http://127.0.0.1:{proxy.port}"
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    yield page
    context.close()
    assert errors == [], errors


def test_assets_are_served_from_the_package(stack: Stack) -> None:
    index = httpx.get(f"{stack.base_url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["Content-Type"]
    assert '<script type="module" src="/ui/app.js">' in index.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = httpx.get(f"{stack.base_url}/ui/{asset}", timeout=10)
        assert response.status_code == 200 and kind in response.headers["Content-Type"]


def expect_stream_finished(page: Page) -> None:
    """The page saw ``done``; on failure, say what it did see."""
    try:
        expect(page.locator("#conn-state")).to_have_text("finished", timeout=30_000)
    except AssertionError:
        seen = page.evaluate(
            "window.agentwire.view ? window.agentwire.view.events.map(e => `${e.seq}:${e.type}`) : null"
        )
        state = page.locator("#conn-state").text_content()
        raise AssertionError(f"stream not finished ({state!r}); the page saw {seen}") from None


def submit_through_page(page: Page, query: str, *, speed: str, budget: str = "") -> str:
    page.fill("#query", query)
    page.select_option("#mode", "standard")
    page.fill("#speed", speed)
    page.fill("#token-budget", budget)
    page.click("#submit")
    expect(page.locator("#task-id")).to_have_text(re.compile(r"^task-"))
    return page.inner_text("#task-id")


def test_dashboard_follows_a_task_across_dropped_streams(page: Page, proxy: DroppingProxy) -> None:
    workflow_id = submit_through_page(page, "Research AI trends in the browser", speed="1")

    # The page's own hook drops the stream early and resumes after the last stream id it saw...
    page.wait_for_function("window.agentwire.view.events.length >= 5", timeout=30_000)
    dropped_mid_stream = page.evaluate(
        "() => { const v = window.agentwire.view; const mid = !v.finished; window.agentwire.dropStream(); return mid; }"
    )
    assert dropped_mid_stream
    # ...then the proxy cuts that second stream: EventSource shows "reconnecting" and resumes with Last-Event-ID.
    page.wait_for_function("window.agentwire.view.drops >= 1", timeout=30_000)
    assert proxy.cuts == 1

    expect(page.locator("#progress-text")).to_have_text("100%", timeout=60_000)
    expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
    expect_stream_finished(page)
    assert page.get_attribute("#progress", "value") == "100"

    lanes = page.locator("#lanes .lane").evaluate_all("els => els.map(e => e.dataset.agent)")
    assert set(lanes) >= {"research-agent", "analysis-agent", "writer-agent"}
    assert page.locator('.lane[data-agent="writer-agent"] .text').inner_text().startswith("Summary written")
    assert page.locator('.lane[data-agent="research-agent"] .tools li').count() >= 2

    seqs = page.evaluate("window.agentwire.view.events.map(e => e.seq)")
    assert seqs == list(range(1, len(seqs) + 1)), "an event was lost or duplicated across the drop"
    assert page.locator("#event-log li").count() == len(seqs)
    assert page.evaluate("window.agentwire.view.events.at(-1).type") == "WORKFLOW_COMPLETED"
    expect(page.locator(f'#task-list tr[data-id="{workflow_id}"] .status')).to_have_text("completed")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webui.png"), full_page=True)


def test_budget_gauge_turns_red_and_log_filters_hide_types(page: Page) -> None:
    submit_through_page(page, "Exhaust a small budget", speed="20", budget="400")
    expect_stream_finished(page)
    types = page.evaluate("window.agentwire.view.events.map(e => e.type)")
    assert types[-1] == "WORKFLOW_FAILED" and "BUDGET_THRESHOLD" in types, types
    expect(page.locator("#budget-gauge")).to_have_class("gauge red")
    expect(page.locator("#task-status")).to_have_text("failed", timeout=30_000)
    thresholds = page.locator('#event-log li[data-type="BUDGET_THRESHOLD"]')
    assert thresholds.count() >= 1
    page.locator('#log-filters input[data-type="BUDGET_THRESHOLD"]').uncheck()
    expect(thresholds.first).to_be_hidden()


def test_with_auth_the_stream_url_carries_a_token_not_the_key(browser: Browser, auth_stack: AuthStack) -> None:
    context = browser.new_context(base_url=auth_stack.base_url)
    page = context.new_page()
    stream_urls: list[str] = []
    page.on("request", lambda request: stream_urls.append(request.url) if "/stream/sse" in request.url else None)
    try:
        page.goto("/")
        page.fill("#api-key", auth_stack.key_a)
        page.dispatch_event("#api-key", "change")
        assert page.evaluate("sessionStorage.getItem('agentwire.apiKey')") == auth_stack.key_a
        page.fill("#query", "Authenticated browser task")
        page.select_option("#mode", "simple")
        page.fill("#speed", "20")
        page.click("#submit")
        expect_stream_finished(page)
        expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
        assert stream_urls and all("token=" in url and auth_stack.key_a not in url for url in stream_urls)
        expect(page.locator("#task-list tbody tr")).not_to_have_count(0)
    finally:
        context.close()


def test_approvals_sessions_charts_and_timeline(page: Page, stack: Stack) -> None:
    # A session of two tasks; the second asks for a human approval of its plan.
    session_id = f"s-ui-{uuid.uuid4().hex[:8]}"

    def submit(query: str, **context: object) -> str:
        body = {"query": query, "session_id": session_id, "context": {"speed": 4, **context}}
        response = httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return str(response.json()["workflow_id"])

    first = submit("Map the Kafka ecosystem")
    second = submit("Compare streaming engines", require_approval=True)
    page.evaluate(f"window.agentwire.openTask('{second}')")

    # The side list offers the pending approval; the task view shows the request with its buttons.
    expect(page.locator(f'#approvals li[data-id="{second}"]')).to_be_visible(timeout=30_000)
    expect(page.locator("#approval-panel")).to_be_visible(timeout=30_000)
    expect(page.locator("#approval-text")).to_contain_text("Approval requested for the plan")
    page.fill("#approval-feedback", "go ahead")
    page.click("#approve")
    expect(page.locator("#approval-panel")).to_be_hidden()
    expect(page.locator("#task-status")).to_have_text("completed", timeout=60_000)
    expect_stream_finished(page)
    decision = page.evaluate("window.agentwire.view.events.find(e => e.type === 'APPROVAL_DECISION').payload")
    assert decision["approved"] is True and decision["feedback"] == "go ahead"
    expect(page.locator("#approvals li")).to_have_count(0)

    # The per-agent timeline of the selected task, from GET /timeline.
    page.wait_for_function("Number(document.querySelector('#gantt').dataset.agents) >= 4", timeout=30_000)
    lanes = page.locator("#gantt .gantt-lane").evaluate_all("els => els.map(e => e.dataset.agent)")
    assert {"research-agent", "analysis-agent", "writer-agent"} <= set(lanes)
    assert page.locator("#gantt .gantt-step.step-approval").count() == 1
    assert page.locator("#gantt .gantt-step.step-llm").count() >= 3

    # Live charts: events per second of the open stream, active workflows, tokens and cost per task.
    page.wait_for_function("Number(document.querySelector('#chart-events').dataset.points) >= 3", timeout=10_000)
    page.wait_for_function("Number(document.querySelector('#chart-usage').dataset.bars) >= 2", timeout=30_000)
    assert page.locator("#chart-active polyline").count() == 1

    # Session history: the session, its turns in order, and a past task's stream replayed.
    row = page.locator(f'#session-list tr[data-id="{session_id}"]')
    expect(row).to_be_visible(timeout=30_000)
    row.click()
    expect(page.locator("#session-turns li")).to_have_count(2, timeout=30_000)
    turns = page.locator("#session-turns li").evaluate_all("els => els.map(e => e.dataset.id)")
    assert turns == [first, second]
    page.locator(f'#session-turns li[data-id="{first}"] button.replay').click()
    expect(page.locator("#task-id")).to_have_text(first)
    expect_stream_finished(page)
    seqs = page.evaluate("window.agentwire.view.events.map(e => e.seq)")
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 20
    page.evaluate(f"window.agentwire.openTask('{second}')")
    page.wait_for_function("Number(document.querySelector('#gantt').dataset.agents) >= 4", timeout=30_000)
    # docs/dashboard-interactions.png is a copy of this one, taken by hand: a test never rewrites tracked files
    page.screenshot(path=str(ARTIFACTS / "dashboard-interactions.png"), full_page=True)
