// pgqueue's dashboard: polls the read-only JSON of /dashboard/api every
// POLL_MS and draws it. No framework, no build step. Everything from the
// server goes into the page as text (a run's error may hold anything), but
// the chart, which is SVG the server wrote from numbers alone.
"use strict";

const POLL_MS = 2000;
// Relative to the page, so the dashboard works under a mount_prefix too.
const API = "dashboard/api/";
const WINDOWS = ["5m", "15m", "1h", "6h", "24h"];

let polls = 0;
let timer = null;
// One poll at a time: a click during one asks for another right after.
let inFlight = false;
let again = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function setHash(changes) {
  const params = hashParams();
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) params.delete(key);
    else params.set(key, value);
  }
  location.hash = params.toString();
}

function currentWindow() {
  const w = hashParams().get("window");
  return WINDOWS.includes(w) ? w : "15m";
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// The tail: run ids are UUIDv7, whose head is a timestamp that runs
// submitted together share.
function shortId(id) {
  return id ? `…${String(id).slice(-8)}` : "–";
}

function runLink(id) {
  return el("a", { href: `#${linkHash(id)}`, class: "mono run-link", "data-run-id": id, title: id }, shortId(id));
}

function linkHash(runId) {
  const params = hashParams();
  params.set("run", runId);
  return params.toString();
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

function fillTable(id, rows, columns, emptyText) {
  const body = document.querySelector(`#${id} tbody`);
  const width = document.querySelectorAll(`#${id} thead th`).length;
  body.replaceChildren(
    ...(rows.length
      ? rows.map((row) => el("tr", {}, columns.map((cell) => el("td", cell.attrs ? cell.attrs(row) : {}, cell.value(row)))))
      : [el("tr", {}, el("td", { class: "empty", colSpan: width }, emptyText))]),
  );
}

function card(label, value, name) {
  return el("div", { class: "card", "data-card": name }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function drawCards(data) {
  const live = data.live || {};
  const ended = data.ended || {};
  document.getElementById("cards").replaceChildren(
    card("pending (ready)", live.ready ?? 0, "ready"),
    card("pending (delayed)", live.delayed ?? 0, "delayed"),
    card("running", live.running ?? 0, "running"),
    card("oldest ready wait", age(live.oldest_ready_seconds), "oldest"),
    card("ended, last minute", data.throughput.ended_last_minute, "last-minute"),
    card(`ended / min (${data.window.name} avg)`, data.throughput.per_minute, "per-minute"),
    card(`succeeded (${data.window.name})`, ended.success ?? 0, "success"),
    card(`failed (${data.window.name})`, (ended.error ?? 0) + (ended.timeout ?? 0), "failed"),
  );
}

function drawWorkers(workers) {
  fillTable(
    "workers",
    workers,
    [
      { value: (w) => el("span", { class: "mono", title: w.worker_id }, w.worker_id) },
      { value: (w) => (w.registered ? `${w.host} · ${w.pid}` : "no longer registered") },
      {
        attrs: (w) => ({ class: w.alive ? "" : "dead" }),
        value: (w) => (w.registered ? `${age(w.heartbeat_age_seconds)} ago${w.alive ? "" : " (silent)"}` : "–"),
      },
      {
        value: (w) =>
          w.runs.length
            ? w.runs.map((r) => el("div", {}, runLink(r.run_id), ` attempt ${r.attempt} · ${age(r.lease_age_seconds)} · ${age(r.held_seconds)}`, r.stale ? el("span", { class: "dead" }, " stale") : null))
            : el("span", { class: "empty" }, w.registered ? `idle (${w.concurrency} slots)` : "none"),
      },
    ],
    "no worker registered",
  );
}

function drawStale(stale) {
  fillTable(
    "stale",
    stale,
    [
      { value: (r) => runLink(r.run_id) },
      { value: (r) => el("span", { class: "mono" }, r.worker_id ?? "–") },
      { value: (r) => `${r.attempt} of ${r.max_attempts}` },
      { attrs: () => ({ class: "dead" }), value: (r) => age(r.lease_age_seconds) },
    ],
    "none",
  );
}

function drawFailures(failures) {
  fillTable(
    "failures",
    failures,
    [
      { value: (r) => when(r.ended_at) },
      { value: (r) => runLink(r.run_id) },
      { value: (r) => r.graph_id ?? "–" },
      { value: (r) => statusBadge(r.status) },
      { value: (r) => `${r.attempt} of ${r.max_attempts}` },
      {
        attrs: () => ({ class: "error-text" }),
        value: (r) => [r.error_type ? el("strong", {}, `${r.error_type}: `) : null, r.error_message ?? ""],
      },
    ],
    "no failure in this window",
  );
}

function drawRecent(recent) {
  fillTable(
    "recent",
    recent,
    [
      { value: (r) => runLink(r.run_id) },
      { value: (r) => r.graph_id ?? "–" },
      { value: (r) => statusBadge(r.status) },
      { value: (r) => r.attempt },
      { value: (r) => when(r.created_at) },
      { value: (r) => when(r.ended_at) },
    ],
    "no run in this window",
  );
}

function step(kind, title, ...details) {
  return el(
    "li",
    { class: `step-${kind}`, "data-step": kind },
    el("div", { class: "step-title" }, title),
    details.filter(Boolean).map((d) => el("div", { class: "step-detail" }, d)),
  );
}

function drawTimeline(data) {
  const run = data.run;
  const steps = [step("submitted", `submitted ${when(run.created_at)}`, run.graph_id ? `graph ${run.graph_id}` : null, run.thread_id ? `thread ${run.thread_id}` : "no thread")];
  for (const a of data.attempts) {
    const holder = a.worker_id ? `held by ${a.worker_id}` : a.claimed_at ? "holder: none now" : "holder not recorded (the runs table keeps the last attempt's only)";
    steps.push(
      step(
        "attempt",
        `attempt ${a.attempt}${a.claimed_at ? `, claimed ${when(a.claimed_at)}` : ""}: ${a.outcome}`,
        holder,
        `${a.events} event(s)${a.events ? ` (${a.event_kinds.join(", ")}), ${when(a.first_event_at)} – ${when(a.last_event_at)}` : ""}`,
        `${a.checkpoints.length} checkpoint(s)`,
      ),
    );
  }
  if (run.status === "pending") {
    steps.push(step("pending", `pending: next attempt ${run.attempt + 1} of ${run.max_attempts}, not before ${when(run.not_before)}`));
  } else if (run.status !== "running") {
    steps.push(step(run.status, `${run.status} ${when(run.ended_at)}`, run.error_type || run.error_message ? `${run.error_type ?? "error"}: ${run.error_message ?? ""}` : null));
  }
  const cp = data.checkpoints;
  const summary = el(
    "p",
    { class: "hint" },
    `status ${run.status} · attempt ${run.attempt} of ${run.max_attempts}` +
      (run.releases ? ` (${run.releases} handed back at shutdown, not counted)` : "") +
      ` · ${data.events.total} event(s) · ${cp.total} checkpoint(s)` +
      (cp.total > cp.shown ? ` (first ${cp.shown} shown)` : ""),
  );
  const ids = cp.items.length
    ? el("details", {}, el("summary", {}, "checkpoint ids"), el("ol", { class: "mono" }, cp.items.map((c) => el("li", {}, `${c.checkpoint_id}${c.checkpoint_ns ? ` [${c.checkpoint_ns}]` : ""} · ${c.source ?? ""} step ${c.step ?? "?"} · attempt ${c.attempt ?? "?"}`))))
    : null;
  const body = document.getElementById("timeline-body");
  body.replaceChildren(summary, el("ol", { class: "steps" }, steps), ids ?? "");
  const section = document.getElementById("timeline");
  section.dataset.runId = run.run_id;
  section.dataset.status = run.status;
}

async function getJSON(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status}: ${body.detail ?? response.statusText}`);
  return body;
}

async function pollTimeline() {
  const runId = hashParams().get("run");
  const section = document.getElementById("timeline");
  if (!runId) {
    section.hidden = true;
    delete section.dataset.runId;
    return;
  }
  section.hidden = false;
  document.getElementById("timeline-run").textContent = runId;
  try {
    drawTimeline(await getJSON(`runs/${encodeURIComponent(runId)}`));
  } catch (err) {
    document.getElementById("timeline-body").replaceChildren(el("p", { class: "dead" }, String(err.message)));
    section.dataset.runId = "";
  }
}

async function poll() {
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = true;
  clearTimeout(timer);
  const status = document.getElementById("status");
  const w = currentWindow();
  for (const button of document.querySelectorAll("#windows button")) {
    button.classList.toggle("active", button.dataset.window === w);
  }
  try {
    const tz = -new Date().getTimezoneOffset();
    const data = await getJSON(`overview?window=${w}&tz=${tz}`);
    drawCards(data);
    // The one place HTML is inserted: the server's SVG, drawn from numbers.
    document.getElementById("chart").innerHTML = data.chart_svg;
    drawWorkers(data.workers);
    drawStale(data.stale);
    drawFailures(data.failures);
    drawRecent(data.recent);
    await pollTimeline();
    polls += 1;
    status.dataset.polls = String(polls);
    status.className = "";
    status.textContent = `updated ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s`;
  } catch (err) {
    status.className = "failed";
    status.textContent = `update failed: ${err.message}`;
  }
  inFlight = false;
  if (again) {
    again = false;
    poll();
  } else {
    timer = setTimeout(poll, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#windows button")) {
    button.addEventListener("click", () => setHash({ window: button.dataset.window }));
  }
  document.getElementById("timeline-close").addEventListener("click", (event) => {
    event.preventDefault();
    setHash({ run: null });
  });
  window.addEventListener("hashchange", poll);
  poll();
});
