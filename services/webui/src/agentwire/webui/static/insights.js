// Dashboard parts that drive and explain a stream: approvals, sessions, live charts, the per-agent timeline.
// Plain ES module, no build step; charts are small hand-drawn SVGs (a few polylines and rectangles).

const SVG = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);

function svgEl(name, attrs = {}, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// ---- approvals ----------------------------------------------------------------------------------

/** Approve or deny; returns the API's answer (throws with the server's message). */
export async function decide(api, workflowId, approvalId, approved, feedback = "") {
  const body = { approval_id: approvalId, workflow_id: workflowId, approved };
  if (feedback) body.feedback = feedback;
  return api("/api/v1/approvals/decision", { method: "POST", body });
}

/** The task view's approval box: shown while the open task waits for a decision. */
export class ApprovalPanel {
  constructor(api, onDecided) {
    this.api = api;
    this.onDecided = onDecided;
    this.pending = null;  // {workflowId, approvalId}
    $("#approve").addEventListener("click", () => this.answer(true));
    $("#deny").addEventListener("click", () => this.answer(false));
  }

  reset() {
    this.pending = null;
    $("#approval-panel").hidden = true;
    $("#approval-error").textContent = "";
  }

  onEvent(workflowId, ev) {
    const p = ev.payload || {};
    if (ev.type === "APPROVAL_REQUESTED" && p.approval_id) {
      this.pending = { workflowId, approvalId: p.approval_id };
      $("#approval-text").textContent = `${p.description || "Approval requested"}` +
        (p.plan ? `: ${p.plan.join(", ")}` : "") + (p.expires_at ? ` (expires ${p.expires_at})` : "");
      $("#approval-panel").hidden = false;
    } else if (ev.type === "APPROVAL_DECISION" && this.pending && p.approval_id === this.pending.approvalId) {
      this.reset();
    } else if (["WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"].includes(ev.type)) {
      this.reset();
    }
  }

  async answer(approved) {
    if (!this.pending) return;
    const { workflowId, approvalId } = this.pending;
    try {
      await decide(this.api, workflowId, approvalId, approved, $("#approval-feedback").value.trim());
      $("#approval-feedback").value = "";
      this.reset();
      this.onDecided();
    } catch (error) {
      $("#approval-error").textContent = error.message;
    }
  }
}

/** The side list of tasks waiting for a decision (from the task list's pending_approval). */
export function renderPendingApprovals(api, tasks, openTask, refresh) {
  const list = $("#approvals");
  const waiting = tasks.filter((t) => t.pending_approval);
  $("#approvals-none").hidden = waiting.length > 0;
  list.replaceChildren(...waiting.map((task) => {
    const li = document.createElement("li");
    li.dataset.id = task.task_id;
    const name = document.createElement("a");
    name.textContent = task.query.slice(0, 30);
    name.href = `?task=${encodeURIComponent(task.task_id)}`;
    name.addEventListener("click", (event) => { event.preventDefault(); openTask(task.task_id); });
    li.append(name);
    for (const [label, approved] of [["Approve", true], ["Deny", false]]) {
      const button = document.createElement("button");
      button.textContent = label;
      button.className = approved ? "approve" : "deny";
      button.addEventListener("click", async () => {
        try { await decide(api, task.task_id, task.pending_approval, approved); } catch { /* the list refreshes */ }
        refresh();
      });
      li.append(" ", button);
    }
    return li;
  }));
}

// ---- sessions -----------------------------------------------------------------------------------

export async function refreshSessions(api, openSession) {
  const { sessions } = await api("/api/v1/sessions?limit=20");
  $("#session-list tbody").replaceChildren(...sessions.map((s) => {
    const row = document.createElement("tr");
    row.dataset.id = s.session_id;
    row.innerHTML = "<td></td><td></td>";
    row.cells[0].textContent = (s.title || s.latest_task_query || s.session_id).slice(0, 32);
    row.cells[0].title = s.session_id;
    row.cells[1].textContent = `${s.task_count} task${s.task_count === 1 ? "" : "s"}`;
    row.addEventListener("click", () => openSession(s.session_id));
    return row;
  }));
}

/** A session's turns, each with a button that replays the task's stream in the task view. */
export async function showSession(api, sessionId, openTask) {
  const [session, history] = await Promise.all([
    api(`/api/v1/sessions/${encodeURIComponent(sessionId)}`),
    api(`/api/v1/sessions/${encodeURIComponent(sessionId)}/history`),
  ]);
  $("#session-view").hidden = false;
  $("#session-title").textContent = session.title || session.session_id;
  $("#session-totals").textContent =
    `${session.task_count} tasks · ${session.tokens_used} tokens · $${Number(session.total_cost_usd).toFixed(6)}`;
  $("#session-turns").replaceChildren(...history.tasks.map((task) => {
    const li = document.createElement("li");
    li.dataset.id = task.task_id;
    const head = document.createElement("div");
    head.className = "turn-head";
    head.textContent = task.query;
    const status = document.createElement("span");
    status.className = `status ${task.status.replace("TASK_STATUS_", "").toLowerCase()}`;
    status.textContent = ` ${task.status.replace("TASK_STATUS_", "").toLowerCase()}`;
    head.append(status);
    const replay = document.createElement("button");
    replay.textContent = "Replay";
    replay.className = "replay";
    replay.addEventListener("click", () => openTask(task.task_id));
    head.append(" ", replay);
    const result = document.createElement("div");
    result.className = "turn-result";
    result.textContent = task.result || task.error_message || "";
    li.append(head, result);
    return li;
  }));
}

// ---- live charts --------------------------------------------------------------------------------

const WINDOW = 60;  // seconds shown by the time charts

/** A line chart of the last WINDOW samples (one per second). */
class LineChart {
  constructor(el, label) {
    this.el = el;
    this.label = label;
    this.samples = [];
  }

  push(value) {
    this.samples.push(value);
    if (this.samples.length > WINDOW) this.samples.shift();
    this.draw();
  }

  draw() {
    const w = 300, h = 90, pad = 18;
    const max = Math.max(1, ...this.samples);
    const points = this.samples.map((v, i) =>
      `${pad + (i * (w - pad)) / (WINDOW - 1)},${h - pad - (v * (h - 2 * pad)) / max}`).join(" ");
    const last = this.samples.length ? this.samples[this.samples.length - 1] : 0;
    this.el.replaceChildren(
      svgEl("text", { x: pad, y: 12, class: "chart-label" }, `${this.label}: ${round(last)} (max ${round(max)})`),
      svgEl("line", { x1: pad, y1: h - pad, x2: w, y2: h - pad, class: "axis" }),
      svgEl("polyline", { points, class: "series" }),
    );
    this.el.dataset.points = String(this.samples.length);
    this.el.dataset.last = String(last);
  }
}

const round = (v) => (Math.round(v * 10) / 10).toString();

/** Bars of tokens per task (cost in the tooltip and label), newest task on the right. */
function drawUsage(el, tasks) {
  const w = 300, h = 90, pad = 18;
  const rows = tasks.filter((t) => t.total_token_usage).slice(0, 12).reverse();
  const max = Math.max(1, ...rows.map((t) => t.total_token_usage.total_tokens));
  const width = rows.length ? (w - pad) / rows.length : 0;
  const cost = rows.reduce((sum, t) => sum + (t.total_token_usage.cost_usd || 0), 0);
  const bars = rows.map((t, i) => {
    const u = t.total_token_usage;
    const height = (u.total_tokens * (h - 2 * pad)) / max;
    const bar = svgEl("rect", { x: pad + i * width + 1, y: h - pad - height, width: Math.max(width - 2, 1),
                                height, class: "bar" });
    bar.append(svgEl("title", {}, `${t.query.slice(0, 40)}: ${u.total_tokens} tokens, $${u.cost_usd}`));
    return bar;
  });
  el.replaceChildren(
    svgEl("text", { x: pad, y: 12, class: "chart-label" }, `tokens per task (${rows.length} tasks, $${cost.toFixed(6)})`),
    svgEl("line", { x1: pad, y1: h - pad, x2: w, y2: h - pad, class: "axis" }),
    ...bars,
  );
  el.dataset.bars = String(rows.length);
}

export class Metrics {
  constructor() {
    this.rate = new LineChart($("#chart-events"), "events/s (open stream)");
    this.active = new LineChart($("#chart-active"), "active workflows");
    this.count = 0;
    this.activeNow = 0;
    setInterval(() => this.tick(), 1000);
  }

  event() { this.count += 1; }

  tasks(list) {
    this.activeNow = list.filter((t) => ["QUEUED", "RUNNING", "PAUSED"].includes(
      t.status.replace("TASK_STATUS_", ""))).length;
    drawUsage($("#chart-usage"), list);
  }

  tick() {
    this.rate.push(this.count);
    this.count = 0;
    this.active.push(this.activeNow);
  }
}

// ---- per-agent timeline (Gantt) -----------------------------------------------------------------

const STEP_CLASS = { llm: "step-llm", tool: "step-tool", approval: "step-approval", pause: "step-pause" };

/** Draw GET /api/v1/tasks/{id}/timeline: a lane per agent, its steps as bars along the task's time. */
export function drawTimeline(el, timeline) {
  const agents = timeline.agents || [];
  const t0 = Date.parse(timeline.started_at);
  const t1 = timeline.ended_at ? Date.parse(timeline.ended_at)
    : Math.max(t0 + 1, ...agents.map((a) => Date.parse(a.ended_at || a.started_at)));
  const span = Math.max(t1 - t0, 1);
  const left = 130, w = 820, laneH = 22;
  const x = (moment) => left + ((Date.parse(moment) - t0) * (w - left)) / span;
  el.setAttribute("viewBox", `0 0 ${w} ${agents.length * laneH + 20}`);
  el.setAttribute("height", String(agents.length * laneH + 20));
  const parts = [];
  agents.forEach((agent, i) => {
    const y = i * laneH + 4;
    const g = svgEl("g", { class: "gantt-lane", "data-agent": agent.agent_id });
    g.append(svgEl("text", { x: 4, y: y + 13, class: "gantt-name" }, agent.agent_id));
    const end = agent.ended_at || timeline.ended_at || new Date(t1).toISOString();
    const bar = svgEl("rect", { x: x(agent.started_at), y, height: laneH - 6, class: `gantt-agent ${agent.status}`,
                                width: Math.max(x(end) - x(agent.started_at), 2) });
    bar.append(svgEl("title", {}, `${agent.agent_id}: ${agent.duration_ms ?? "…"} ms (${agent.status})`));
    g.append(bar);
    for (const step of agent.steps) {
      const stepEnd = step.ended_at || end;
      const r = svgEl("rect", { x: x(step.started_at), y: y + 3, height: laneH - 12,
                                width: Math.max(x(stepEnd) - x(step.started_at), 2),
                                class: `gantt-step ${STEP_CLASS[step.kind] || ""} ${step.status}` });
      r.append(svgEl("title", {}, `${step.kind} ${step.name}: ${step.duration_ms ?? "…"} ms (${step.status})`));
      g.append(r);
    }
    parts.push(g);
  });
  parts.push(svgEl("text", { x: left, y: agents.length * laneH + 16, class: "chart-label" },
                   `${timeline.duration_ms ?? "…"} ms, ${agents.length} agents`));
  el.replaceChildren(...parts);
  el.dataset.agents = String(agents.length);
}
