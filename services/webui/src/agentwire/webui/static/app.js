// agentwire dashboard: plain ES module, no build step. Talks only to the public HTTP API.
import { ApprovalPanel, Metrics, drawTimeline, refreshSessions, renderPendingApprovals, showSession } from "./insights.js";

const TYPES = `WORKFLOW_STARTED WORKFLOW_COMPLETED WORKFLOW_FAILED AGENT_STARTED AGENT_COMPLETED AGENT_FAILED
AGENT_THINKING ERROR_RECOVERY WARNING STATUS_UPDATE PROGRESS DATA_PROCESSING WAITING TEAM_STATUS LLM_PROMPT
TOOL_INVOKED TOOL_OBSERVATION TOOL_ERROR SCREENSHOT_SAVED DELEGATION ROLE_ASSIGNED DEPENDENCY_SATISFIED
TEAM_RECRUITED TEAM_RETIRED MESSAGE_SENT MESSAGE_RECEIVED WORKSPACE_UPDATED TASKLIST_UPDATED LEAD_DECISION
LEAD_TOOL_CALL HITL_RESPONSE BUDGET_THRESHOLD APPROVAL_REQUESTED APPROVAL_DECISION RESEARCH_PLAN_READY
REVIEW_USER_FEEDBACK RESEARCH_PLAN_UPDATED RESEARCH_PLAN_APPROVED`.split(/\s+/);
// SSE names the edge renames, mapped back to the internal type.
const RENAMED = {
  "thread.message.delta": "LLM_PARTIAL", "thread.message.completed": "LLM_OUTPUT", "error": "ERROR_OCCURRED",
  "ERROR_OCCURRED": "ERROR_OCCURRED", "done": "STREAM_END",
  "workflow.pausing": "WORKFLOW_PAUSING", "workflow.paused": "WORKFLOW_PAUSED",
  "workflow.resumed": "WORKFLOW_RESUMED", "workflow.cancelling": "WORKFLOW_CANCELLING",
  "workflow.cancelled": "WORKFLOW_CANCELLED",
};
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]);
const $ = (sel) => document.querySelector(sel);

// ---- REST -------------------------------------------------------------------------------------
const keyInput = $("#api-key");
keyInput.value = sessionStorage.getItem("agentwire.apiKey") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("agentwire.apiKey", keyInput.value.trim()));

async function api(path, { method = "GET", body } = {}) {
  const headers = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(data.error || `HTTP ${response.status}`), { status: response.status, data });
  return data;
}

const shortStatus = (s) => (s || "").replace("TASK_STATUS_", "").toLowerCase();

// ---- submit + task list -------------------------------------------------------------------------
$("#submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#submit-error").textContent = "";
  const context = {};
  const features = [...document.querySelectorAll("input[name=feature]:checked")].map((box) => box.value);
  if (features.length) context.features = features;
  if ($("#force-swarm").checked) context.force_swarm = true;
  if ($("#require-approval").checked) context.require_approval = true;
  const budget = parseInt($("#token-budget").value, 10);
  if (budget > 0) context.token_budget = budget;
  const speed = parseFloat($("#speed").value);
  if (speed > 0) context.speed = speed;
  try {
    const task = await api("/api/v1/tasks", { method: "POST", body: { query: $("#query").value, mode: $("#mode").value, context } });
    openTask(task.workflow_id);
    refreshList();
  } catch (error) {
    $("#submit-error").textContent = error.message;
  }
});

async function refreshList() {
  try {
    const { tasks } = await api("/api/v1/tasks?limit=20");
    metrics.tasks(tasks);
    renderPendingApprovals(api, tasks, openTask, refreshList);
    const body = $("#task-list tbody");
    body.replaceChildren(...tasks.map((task) => {
      const row = document.createElement("tr");
      row.dataset.id = task.task_id;
      row.innerHTML = `<td></td><td class="status ${shortStatus(task.status)}">${shortStatus(task.status)}</td>`;
      row.firstChild.textContent = task.query.slice(0, 40);
      row.firstChild.title = task.task_id;
      row.addEventListener("click", () => openTask(task.task_id));
      return row;
    }));
  } catch { /* list is best effort; the next poll retries */ }
}
const metrics = new Metrics();
const approvals = new ApprovalPanel(api, () => { refreshList(); if (view) view.refreshStatus(); });
setInterval(refreshList, 2000);
refreshList();

async function openSession(id) {
  try { await showSession(api, id, openTask); } catch (error) { $("#session-totals").textContent = error.message; }
}
const listSessions = () => refreshSessions(api, openSession).catch(() => { /* best effort; the next poll retries */ });
setInterval(listSessions, 5000);
listSessions();

// ---- task view ----------------------------------------------------------------------------------
let view = null;   // the open task's state

function openTask(id) {
  if (view) view.close();
  view = new TaskView(id);
}

class TaskView {
  constructor(id) {
    this.id = id;
    this.events = [];       // normalized events in arrival order (the test checks seq continuity)
    this.lanes = new Map();
    this.lastEventId = "";
    this.source = null;
    this.finished = false;
    this.drops = 0;         // connection errors seen (each followed by a resume)
    this.budget = null;
    this.tokensUsed = 0;
    $("#task-view").hidden = false;
    $("#task-id").textContent = id;
    for (const el of ["#event-log", "#lanes", "#log-filters", "#result", "#control-message"]) $(el).replaceChildren();
    this.setProgress(0);
    this.setBudget(null);
    this.typeFilters = new Map();
    approvals.reset();
    this.timeline = null;
    this.poll = setInterval(() => this.refreshStatus(), 1000);
    // not the previous task's state: a new view is connecting until its stream opens
    this.setConn("connecting…", "reconnecting");
    this.refreshStatus();
    this.connect();
  }

  close() {
    clearInterval(this.poll);
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }

  async refreshStatus() {
    // Responses can arrive out of order: apply only one newer than the last applied.
    const ticket = (this.statusTicket = (this.statusTicket || 0) + 1);
    try {
      const task = await api(`/api/v1/tasks/${encodeURIComponent(this.id)}`);
      if (ticket < (this.appliedTicket || 0) || this.terminal) return;
      this.appliedTicket = ticket;
      const status = shortStatus(task.status);
      this.terminal = TERMINAL.has(status.toUpperCase());
      const el = $("#task-status");
      el.textContent = status;
      el.className = `status ${status}`;
      if (this.budget === null && task.context && task.context.token_budget) this.setBudget(task.context.token_budget);
      if (task.result) $("#result").textContent = task.result;
      this.refreshTimeline();
      if (this.terminal) clearInterval(this.poll);
    } catch (error) {
      $("#task-status").textContent = error.status === 404 ? "not found" : "unreachable";
    }
  }

  async refreshTimeline() {
    try {
      const timeline = await api(`/api/v1/tasks/${encodeURIComponent(this.id)}/timeline`);
      if (view === this) drawTimeline($("#gantt"), timeline);
    } catch { /* drawn again at the next status poll */ }
  }

  async streamUrl(lastId) {
    const params = new URLSearchParams({ workflow_id: this.id });
    if (keyInput.value.trim()) {
      // Never an API key in a URL: a short-lived stream token instead.
      const { token } = await api("/api/v1/stream/token", { method: "POST", body: { workflow_id: this.id } });
      params.set("token", token);
    }
    if (lastId) params.set("last_event_id", lastId);
    return `/api/v1/stream/sse?${params}`;
  }

  async connect(lastId = "") {
    let url;
    try {
      url = await this.streamUrl(lastId);
    } catch (error) {
      this.setConn(`stream token failed: ${error.message}; retrying`, "reconnecting");
      this.retryLater();
      return;
    }
    if (this.finished || view !== this) return;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => this.setConn("live", "");
    source.onerror = (event) => {
      if (event.data !== undefined || this.source !== source) return;   // a named `error` frame, handled below
      // EventSource reconnects by itself, sending Last-Event-ID.
      this.drops += 1;
      this.setConn("reconnecting…", "reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the reconnect (e.g. an expired stream token): start over with a fresh one.
        source.close();
        this.source = null;
        this.retryLater();
      }
    };
    for (const name of [...TYPES, ...Object.keys(RENAMED)]) {
      source.addEventListener(name, (event) => this.onFrame(name, event, source));
    }
  }

  retryLater() {
    if (this.finished || view !== this) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(this.lastEventId || ""), 1000);
  }

  /** Test hook: drop the connection and resume after the last event received. */
  dropStream() {
    if (this.source) this.source.close();
    this.source = null;
    this.setConn("reconnecting…", "reconnecting");
    return this.connect(this.lastEventId);
  }

  onFrame(name, event, source) {
    if (event.data === undefined) return;   // the connection-level error event
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    if (name === "done") {
      this.finished = true;
      source.close();
      this.setConn("finished", "");
      this.refreshStatus();
      return;
    }
    const data = JSON.parse(event.data);
    const type = RENAMED[name] || data.type || name;
    const normalized = {
      type, seq: data.seq, stream_id: data.stream_id || event.lastEventId, agent_id: data.agent_id || "",
      message: type === "LLM_PARTIAL" ? data.delta : type === "LLM_OUTPUT" ? data.response : data.message || "",
      payload: type === "LLM_OUTPUT" ? data.metadata || {} : data.payload || {},
    };
    if (name === "ERROR_OCCURRED" && data.seq === undefined) {   // unknown workflow: the stream ends here
      this.finished = true;
      source.close();
      this.setConn(data.message || "error", "reconnecting");
      return;
    }
    this.apply(normalized);
  }

  apply(ev) {
    this.events.push(ev);
    metrics.event();
    approvals.onEvent(this.id, ev);
    this.log(ev);
    const p = ev.payload;
    if (ev.type === "PROGRESS" && typeof p.percent === "number") this.setProgress(p.percent);
    if (ev.type === "BUDGET_THRESHOLD") {
      if (p.tokens_budget) this.budget = p.tokens_budget;
      this.tokensUsed = p.tokens_used ?? this.tokensUsed;
      this.setBudget(this.budget, p.usage_percent);
    }
    if (ev.type === "LLM_OUTPUT" && p.tokens_used) {
      this.tokensUsed += p.tokens_used;
      if (this.budget) this.setBudget(this.budget);
    }
    if (ev.agent_id && !["orchestrator", "planner"].includes(ev.agent_id)) this.lane(ev.agent_id).apply(ev);
    if (["WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"].includes(ev.type)) {
      if (p.result) $("#result").textContent = p.result;
      this.refreshStatus();
    }
  }

  lane(agent) {
    if (!this.lanes.has(agent)) this.lanes.set(agent, new Lane(agent));
    return this.lanes.get(agent);
  }

  log(ev) {
    if (!this.typeFilters.has(ev.type)) {
      const label = document.createElement("label");
      label.innerHTML = `<input type="checkbox" checked> `;
      label.append(ev.type);
      const box = label.firstChild;
      box.dataset.type = ev.type;
      box.addEventListener("change", () => {
        for (const li of document.querySelectorAll(`#event-log li[data-type="${ev.type}"]`)) li.classList.toggle("hidden", !box.checked);
      });
      this.typeFilters.set(ev.type, box);
      $("#log-filters").append(label);
    }
    const li = document.createElement("li");
    li.value = ev.seq;
    li.dataset.seq = ev.seq;
    li.dataset.type = ev.type;
    li.textContent = `${ev.type} ${ev.agent_id} ${ev.message}`;
    if (!this.typeFilters.get(ev.type).checked) li.classList.add("hidden");
    $("#event-log").append(li);
    $("#event-count").textContent = this.events.length;
  }

  setProgress(percent) {
    $("#progress").value = percent;
    $("#progress-text").textContent = `${Math.round(percent)}%`;
  }

  setBudget(budget, percent) {
    const gauge = $("#budget-gauge");
    if (!budget) {
      $("#budget-fill").style.width = "0";
      $("#budget-text").textContent = "no budget";
      gauge.className = "gauge";
      return;
    }
    this.budget = budget;
    const used = percent ?? (100 * this.tokensUsed) / budget;
    $("#budget-fill").style.width = `${Math.min(used, 100)}%`;
    $("#budget-text").textContent = `${Math.round(used)}% of ${budget}`;
    gauge.className = `gauge${used >= 100 ? " red" : used >= 80 ? " amber" : ""}`;
  }

  setConn(text, cls) {
    const el = $("#conn-state");
    el.textContent = text;
    el.className = `conn ${cls}`;
  }
}

class Lane {
  constructor(agent) {
    this.el = document.createElement("div");
    this.el.className = "lane";
    this.el.dataset.agent = agent;
    this.el.innerHTML = `<h3></h3><div class="step"></div><div class="text"></div><ul class="tools"></ul>`;
    this.el.querySelector("h3").textContent = agent;
    this.streaming = false;
    $("#lanes").append(this.el);
  }

  apply(ev) {
    const text = this.el.querySelector(".text");
    this.el.querySelector(".step").textContent = `${ev.type}: ${ev.type === "LLM_PARTIAL" ? "writing…" : ev.message}`;
    if (ev.type === "LLM_PARTIAL") {
      if (!this.streaming) text.textContent = "";
      this.streaming = true;
      text.textContent += ev.message;
    } else if (ev.type === "LLM_OUTPUT") {
      this.streaming = false;
      text.textContent = ev.message;
    } else if (["TOOL_INVOKED", "TOOL_OBSERVATION", "TOOL_ERROR"].includes(ev.type)) {
      const li = document.createElement("li");
      li.textContent = `${ev.type === "TOOL_INVOKED" ? "→" : ev.type === "TOOL_ERROR" ? "✗" : "←"} ${ev.message}`;
      this.el.querySelector(".tools").append(li);
    } else if (ev.type === "AGENT_COMPLETED") {
      this.el.classList.add("done");
    } else if (ev.type === "AGENT_FAILED") {
      this.el.classList.add("failed");
    }
  }
}

// ---- controls -----------------------------------------------------------------------------------
for (const action of ["pause", "resume", "cancel"]) {
  $(`#${action}`).addEventListener("click", async () => {
    if (!view) return;
    try {
      const reply = await api(`/api/v1/tasks/${encodeURIComponent(view.id)}/${action}`, { method: "POST", body: {} });
      $("#control-message").textContent = reply.message || action;
    } catch (error) {
      $("#control-message").textContent = `${action}: ${error.message}`;
    }
    view.refreshStatus();
  });
}

window.agentwire = { openTask, openSession, dropStream: () => view && view.dropStream(), get view() { return view; } };
const initial = new URLSearchParams(location.search).get("task");
if (initial) openTask(initial);
