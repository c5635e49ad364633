// The dashboard's page (controller/api/dashboard/; issue 14): plain JavaScript, no framework, no
// external asset. It runs only once the server has found a session (GET / serves login.html
// otherwise) and reads the same API as tenantctl, with the session cookie; a state-changing
// request carries the session's CSRF token in X-CSRF-Token.
"use strict";

const PAGE_SIZE = 200;
// Every phase (docs/architecture.md#status-and-events), the order of the counts, and what each
// means in words: a phase is never shown by its colour alone.
const PHASES = [
  ["Stalled", "a person must act"],
  ["Degraded", "failing, retried"],
  ["Progressing", "changes planned"],
  ["Pending", "not reconciled yet"],
  ["Deleting", "being deleted"],
  ["Suspended", "logins closed"],
  ["Ready", "converged"],
];

const state = { session: null, next: "", loaded: 0 };

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (res.status === 401) {
    window.location.assign("/");  // the session ended: the server shows the login form
    throw new Error("session ended");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || res.status + " " + res.statusText);
  return body;
}

function phaseCell(phase) {
  const known = PHASES.find(([name]) => name === phase);
  const span = el("span", { class: "phase phase-" + (known ? phase : "Unknown") }, phase || "Unknown");
  if (known) span.title = known[1];
  return span;
}

// The Ready condition's message, else the last error.
function messageOf(item) {
  const status = item.status || {};
  const ready = (status.conditions || []).find((c) => c.type === "Ready");
  if (ready && ready.status !== "True" && ready.message) return ready.message;
  return status.lastError || (ready ? ready.message || "" : "");
}

function hostOf(item) {
  const spec = item.spec || {};
  const base = state.session && state.session.baseDomain;
  if (!spec.subdomain || !base) return null;
  return spec.subdomain + "." + base;
}

function row(item) {
  const spec = item.spec || {};
  const tr = el("tr");
  const cells = [
    ["Name", item.metadata && item.metadata.name],
    ["Product", spec.product],
    ["Mode", spec.mode],
  ];
  for (const [label, text] of cells) tr.append(el("td", { "data-label": label }, text || ""));
  const phase = el("td", { "data-label": "Phase" });
  phase.append(phaseCell(item.status && item.status.phase));
  tr.append(phase);
  tr.append(el("td", { "data-label": "Message", class: "message" }, messageOf(item)));
  const hostCell = el("td", { "data-label": "Host" });
  const host = hostOf(item);
  if (host) hostCell.append(el("a", { href: "https://" + host + "/", rel: "noopener noreferrer" }, host));
  tr.append(hostCell);
  return tr;
}

async function loadPage() {
  const status = document.getElementById("status");
  const more = document.getElementById("more");
  more.disabled = true;
  try {
    let path = "/api/v1/workspaces?limit=" + PAGE_SIZE;
    if (state.next) path += "&continue=" + encodeURIComponent(state.next);
    const page = await api(path);
    const tbody = document.querySelector("#workspaces tbody");
    for (const item of page.items || []) tbody.append(row(item));
    state.loaded += (page.items || []).length;
    state.next = (page.metadata && page.metadata.continue) || "";
    const left = (page.metadata && page.metadata.remainingItemCount) || 0;
    status.textContent = state.loaded + " workspace(s) shown" + (state.next ? ", " + left + " more" : "");
    more.hidden = !state.next;
  } catch (error) {
    status.textContent = "Could not load the workspaces: " + error.message;
    status.className = "error";
  } finally {
    more.disabled = false;
  }
}

// One small request per phase (limit=1): the count is the page's item plus remainingItemCount,
// so the whole fleet is never fetched for its counts.
async function loadCounts() {
  const list = document.getElementById("counts");
  list.replaceChildren();
  for (const [phase, meaning] of PHASES) {
    const li = el("li");
    li.append(phaseCell(phase));
    const count = el("span", {}, " …");
    li.append(count, el("span", { class: "hint" }, " (" + meaning + ")"));
    list.append(li);
    api("/api/v1/workspaces?limit=1&phase=" + encodeURIComponent(phase))
      .then((page) => {
        const n = (page.items || []).length + ((page.metadata && page.metadata.remainingItemCount) || 0);
        count.textContent = " " + n;
      })
      .catch(() => { count.textContent = " unknown"; });
  }
}

async function start() {
  state.session = await api("/api/v1/session");
  document.getElementById("who").textContent =
    "Logged in as " + state.session.principal + " (" + state.session.role + ")";
  document.getElementById("logout-csrf").value = state.session.csrfToken || "";
  document.getElementById("more").addEventListener("click", loadPage);
  loadCounts();
  await loadPage();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((error) => {
    const status = document.getElementById("status");
    status.textContent = "Could not start: " + error.message;
    status.className = "error";
  });
});
