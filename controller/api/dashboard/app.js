// The dashboard's page (controller/api/dashboard/; issue 14; docs/dashboard.md): plain
// JavaScript, no framework, no external asset. It runs only once the server has found a session
// (GET / serves login.html otherwise) and reads the same API as tenantctl, with the session
// cookie; a state-changing request carries the session's CSRF token in X-CSRF-Token.
//
// Routes are the URL's hash: #/ (the fleet), #/workspaces/NAME, #/products, #/products/NAME (its
// revision and rollout), #/sources, #/new (admins).
// Live: Server-Sent Events from GET /api/v1/stream; when they cannot be had, GET /api/v1/summary
// every few seconds and a refresh when its resourceVersion moved.
"use strict";

const PAGE_SIZE = 50;
const POLL_MS = 5000;
// The shortest time between two refreshes of one page caused by changes.
const REFRESH_GAP_MS = 1000;
// Every phase (docs/architecture.md#status-and-events), most urgent first, and what each means
// in words: a phase is never shown by its colour alone.
const PHASES = [
  ["Stalled", "a person must act"],
  ["Degraded", "failing, retried"],
  ["Progressing", "changes planned"],
  ["Pending", "not reconciled yet"],
  ["Deleting", "being deleted"],
  ["Suspended", "logins closed"],
  ["Ready", "converged"],
];
// A rollout's phases (docs/rollouts.md#the-state-machine): a tone (its colour) and words.
const ROLLOUT_PHASES = {
  Progressing: ["info", "moving workspaces, wave by wave"],
  Paused: ["warn", "waiting before the next wave"],
  Halted: ["bad", "stopped on failures: a person must act"],
  Completed: ["ok", "every wave is done"],
  Aborted: ["idle", "ended early: the reached workspaces stay where they are"],
  Undone: ["idle", "the reached workspaces were moved back and their backups restored"],
  Superseded: ["idle", "a newer revision took over"],
};
// The phases in which a rollout still moves (or waits to): its page is asked again every
// ROLLOUT_POLL_MS, as a pause or a verb changes no workspace and so sends no stream message.
const ROLLOUT_ACTIVE = ["Progressing", "Paused", "Halted"];
const ROLLOUT_POLL_MS = 2000;
// A workspace's state in a rollout, in the order the counts show them.
const ROLLOUT_STATES = [
  ["pending", "idle", "pending", "not moved yet"],
  ["inProgress", "info", "in progress", "moving to the new revision"],
  ["ready", "ok", "ready", "Ready on the new revision"],
  ["failed", "bad", "failed", "failed on the new revision"],
];
// The verbs an admin has (POST /api/v1/products/NAME/rollout/VERB): label, what it does, and
// whether a person must confirm it first.
const ROLLOUT_VERBS = [
  ["pause", "Pause", "No workspace starts moving until Resume", false],
  ["resume", "Resume", "Go on after a pause by a person, or retry the failed workspaces after a halt", false],
  ["promote", "Promote", "End the current pause between waves now", false],
  ["abort", "Abort", "End the rollout: reached workspaces stay, the others stay on the previous revision", true],
  ["undo", "Undo", "Move the reached workspaces back to the previous revision and restore their pre-migration backups", true],
];
// Which form field a validation finding's `field` belongs to (longest prefix wins).
const FIELD_OF_FINDING = [
  ["metadata.name", "name"],
  ["metadata.labels", "plan"],
  ["spec.product", "product"],
  ["spec.mode", "mode"],
  ["spec.dedicated", "endpoint"],
  ["spec.subdomain", "subdomain"],
  ["spec.database.connectionLimit", "connection-limit"],
  ["spec.backup", "backup-schedule"],
];

const state = {
  session: null,
  products: null,      // name -> {defaultVersion, modes}, or null before (or without) an answer
  route: { page: "", name: "" },
  overview: {
    sort: "stuck", desc: false,
    q: "", phase: "", product: "", mode: "", label: "",
    next: "", loaded: 0, generation: 0, items: [],
  },
  live: { source: null, mode: "offline", version: -1, poller: 0, retry: 0 },
  rollout: { status: null, poller: 0, busy: false },  // the product page's
  refresh: { timer: 0, last: 0, pending: false },
};

// ---- small helpers ---------------------------------------------------------------------------

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function $(selector) { return document.querySelector(selector); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, options) {
  const opts = options || {};
  const method = opts.method || "GET";
  const headers = { Accept: "application/json" };
  let body;
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRF-Token"] = (state.session && state.session.csrfToken) || "";
  }
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(path, { method, body, headers, credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) {
    window.location.assign("/");  // the session ended: the server shows the login form
    throw new ApiError(401, { message: "the session ended" });
  }
  const parsed = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, parsed);
  return { status: res.status, body: parsed, headers: res.headers };
}

function isAdmin() { return !!state.session && state.session.role === "admin"; }

function phaseBadge(phase) {
  const known = PHASES.find(([name]) => name === phase);
  const span = el("span", { class: "phase phase-" + (known ? phase : "Unknown") }, phase || "Unknown");
  if (known) span.title = known[1];
  return span;
}

// "12 s" / "3 min" / "5 h" / "2 d" since `then` (milliseconds).
function span(then) {
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
  return Math.floor(seconds / 86400) + " d";
}

// "12 s ago", in a <time> with the exact instant; kept current by tick().
function ago(iso) {
  if (!iso) return el("span", { class: "hint" }, "never");
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return el("span", {}, iso);
  const node = el("time", { datetime: iso, title: iso, "data-relative": "ago" }, span(then) + " ago");
  return node;
}

function age(iso) {
  if (!iso) return el("span", { class: "hint" }, "unknown");
  const node = ago(iso);
  if (node.tagName === "TIME") {
    node.dataset.relative = "age";
    node.textContent = span(Date.parse(iso));
  }
  return node;
}

// Relative times grow older without a change to the fleet.
function tick() {
  if (document.hidden) return;
  for (const node of document.querySelectorAll("time[data-relative]")) {
    const text = span(Date.parse(node.getAttribute("datetime")));
    node.textContent = node.dataset.relative === "ago" ? text + " ago" : text;
  }
}

function conditionOf(item, type) {
  return ((item.status && item.status.conditions) || []).find((c) => c.type === type);
}

// The Ready condition's message when it is not True, else the last error.
function messageOf(item) {
  const status = item.status || {};
  const ready = conditionOf(item, "Ready");
  if (ready && ready.status !== "True" && ready.message) return ready.message;
  return status.lastError || (ready ? ready.message || "" : "");
}

function hostOf(item) {
  const spec = item.spec || {};
  const base = state.session && state.session.baseDomain;
  const sub = spec.subdomain || (item.metadata && item.metadata.name);
  if (!sub || !base) return null;
  return sub + "." + base;
}

function versionOf(item) {
  const spec = item.spec || {};
  if (spec.dedicated && spec.dedicated.version) return spec.dedicated.version;
  const product = state.products && state.products[spec.product];
  return product ? product.defaultVersion + " (default)" : "";
}

// "rev 3": the product revision the workspace converged on (status.productRevision,
// docs/rollouts.md#revisions); null while none was recorded (0).
function revisionBadge(item) {
  const number = item.status && item.status.productRevision;
  if (!number) return null;
  return el("span", { class: "rev", "data-rev": number, title: "Product revision " + number + " (the one it converged on)" }, "rev " + number);
}

function productLink(name) {
  return el("a", { href: "#/products/" + encodeURIComponent(name), class: "product-link" }, name);
}

// When the workspace came to be: metadata.creationTimestamp, else the earliest condition time
// (tenantctl's AGE rule, controller/cli/format.hpp).
function createdOf(item) {
  if (item.metadata && item.metadata.creationTimestamp) return item.metadata.creationTimestamp;
  let earliest = null;
  for (const c of (item.status && item.status.conditions) || []) {
    if (c.lastTransitionTime && (earliest === null || Date.parse(c.lastTransitionTime) < Date.parse(earliest))) {
      earliest = c.lastTransitionTime;
    }
  }
  return earliest;
}

function suspendedOf(item) {
  const status = item.status || {};
  return !!((item.spec && item.spec.suspend) || (status.override && status.override.suspend));
}

function setReady(ready) { document.body.dataset.ready = ready ? "1" : "0"; }

function showError(node, error) {
  node.textContent = error.message || String(error);
  node.classList.add("error");
}

// ---- routes ----------------------------------------------------------------------------------

function parseRoute() {
  const hash = window.location.hash || "#/";
  if (hash.startsWith("#/workspaces/")) {
    return { page: "workspace", name: decodeURIComponent(hash.slice("#/workspaces/".length)) };
  }
  if (hash.startsWith("#/products/")) {
    return { page: "product", name: decodeURIComponent(hash.slice("#/products/".length)) };
  }
  if (hash === "#/products") return { page: "products", name: "" };
  if (hash === "#/sources") return { page: "sources", name: "" };
  if (hash === "#/new" && isAdmin()) return { page: "create", name: "" };
  return { page: "overview", name: "" };
}

const PAGES = {
  overview: { section: "#overview", title: "Fleet", show: showOverview, refresh: refreshOverview },
  workspace: { section: "#workspace-page", title: "", show: showWorkspace, refresh: refreshWorkspace },
  products: { section: "#products-page", title: "Products", show: showProducts, refresh: showProducts },
  product: { section: "#product-page", title: "", show: showProduct, refresh: refreshProduct },
  sources: { section: "#sources-page", title: "Sources", show: showSources, refresh: showSources },
  create: { section: "#create-page", title: "New workspace", show: showCreate, refresh: null },
};

async function navigate() {
  state.route = parseRoute();
  const page = PAGES[state.route.page];
  for (const other of Object.values(PAGES)) $(other.section).hidden = other !== page;
  if (state.route.page !== "product") stopRolloutPoll();
  const hash = window.location.hash || "#/";
  for (const link of document.querySelectorAll("nav a")) {
    const href = link.getAttribute("href");
    const current = href === hash || hash.startsWith(href + "/");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = (page.title || state.route.name) + " · Tenant Master";
  setReady(false);
  try {
    await page.show();
  } finally {
    setReady(true);
  }
}

// A change the stream (or the poller) reported: refresh the current page, at most once per
// REFRESH_GAP_MS, and not while the tab is hidden (it refreshes when shown again).
function changed(names) {
  const route = state.route;
  if (route.page === "workspace" && names && !names.includes(route.name)) return;
  // A product's page: a change of one of its rollout's workspaces (the poll covers the rest).
  if (route.page === "product" && names && !rolloutHas(names)) return;
  if (route.page === "create") return;
  if (route.page === "sources" && names) return;  // a workspace's change: not this page's
  state.refresh.pending = true;
  scheduleRefresh();
}

function scheduleRefresh() {
  if (!state.refresh.pending || state.refresh.timer || document.hidden) return;
  const wait = Math.max(0, state.refresh.last + REFRESH_GAP_MS - Date.now());
  state.refresh.timer = window.setTimeout(async () => {
    state.refresh.timer = 0;
    state.refresh.pending = false;
    state.refresh.last = Date.now();
    const page = PAGES[state.route.page];
    if (page.refresh) {
      try { await page.refresh(); } catch (error) { console.warn("refresh failed", error); }
    }
    scheduleRefresh();
  }, wait);
}

// ---- live updates ----------------------------------------------------------------------------

function setLive(mode) {
  state.live.mode = mode;
  const node = $("#live");
  node.textContent = mode;
  node.className = "live live-" + mode;
  node.title = {
    live: "Changes arrive as they happen (Server-Sent Events)",
    polling: "Changes are asked for every " + POLL_MS / 1000 + " s (the event stream is unavailable)",
    offline: "Not connected to the operator; retrying",
  }[mode];
}

function startStream() {
  if (!window.EventSource) {
    startPolling();
    return;
  }
  const source = new EventSource("/api/v1/stream");
  state.live.source = source;
  source.addEventListener("open", () => {
    state.live.retry = 0;
    stopPolling();
    setLive("live");
  });
  source.addEventListener("hello", (event) => {
    const data = safeJson(event.data);
    // A reconnect after missed messages: whatever changed meanwhile is shown now.
    if (state.live.version >= 0 && data.resourceVersion !== state.live.version) changed(null);
    state.live.version = data.resourceVersion;
  });
  source.addEventListener("fleet", (event) => {
    const data = safeJson(event.data);
    state.live.version = data.resourceVersion;
    // On the fleet page any change may move the counts and the order: refresh it whole.
    changed(data.all || state.route.page === "overview" ? null : data.workspaces || null);
  });
  source.addEventListener("sources", () => {
    if (state.route.page === "sources") changed(null);
  });
  source.addEventListener("error", () => {
    // The browser reconnects by itself (retry: from the server) unless the answer was not a
    // stream at all (404, 503, a proxy): then poll, and try the stream again later.
    if (source.readyState === EventSource.CLOSED) {
      state.live.source = null;
      startPolling();
      window.setTimeout(() => { if (!state.live.source) startStream(); }, 60000);
    } else {
      setLive("offline");
      if (++state.live.retry >= 2) startPolling();
    }
  });
}

function safeJson(text) {
  try { return JSON.parse(text) || {}; } catch (error) { return {}; }
}

function startPolling() {
  if (state.live.poller) return;
  setLive("polling");
  state.live.poller = window.setInterval(pollOnce, POLL_MS);
}

function stopPolling() {
  if (!state.live.poller) return;
  window.clearInterval(state.live.poller);
  state.live.poller = 0;
}

async function pollOnce() {
  if (document.hidden) return;
  try {
    const summary = (await api("/api/v1/summary")).body;
    if (state.live.mode !== "live") setLive("polling");
    if (summary.resourceVersion !== state.live.version) {
      const first = state.live.version < 0;
      state.live.version = summary.resourceVersion;
      if (!first) changed(null);
    }
  } catch (error) {
    if (state.live.mode !== "live") setLive("offline");
  }
}

// ---- the fleet -------------------------------------------------------------------------------

function renderCounts(listId, entries, attr, meaning, onPick) {
  const list = $(listId);
  list.replaceChildren();
  for (const [key, count] of entries) {
    const li = el("li", { ["data-" + attr]: key });
    const button = el("button", { type: "button", class: "count-button", "aria-label": "Show " + attr + " " + key + " only (" + count + ")" });
    if (attr === "phase") button.append(phaseBadge(key));
    else button.append(el("span", { class: "key" }, key));
    button.append(" ", el("span", { class: "count" }, count));
    if (meaning && meaning[key]) button.append(el("span", { class: "hint" }, " (" + meaning[key] + ")"));
    button.addEventListener("click", () => onPick(key));
    li.append(button);
    if (attr === "product") {
      li.append(el("a", { href: "#/products/" + encodeURIComponent(key), class: "count-link", "aria-label": "Product " + key + ": its revision and rollout" }, "rollout"));
    }
    list.append(li);
  }
}

async function loadSummary() {
  const summary = (await api("/api/v1/summary")).body;
  if (state.live.version < 0) state.live.version = summary.resourceVersion;
  const byPhase = summary.byPhase || {};
  const meaning = Object.fromEntries(PHASES);
  const phases = PHASES.map(([name]) => [name, byPhase[name] || 0]);
  for (const [name, count] of Object.entries(byPhase)) {
    if (!meaning[name]) phases.push([name, count]);
  }
  const pick = (field, select) => (value) => {
    state.overview[field] = value;
    $(select).value = value;
    reloadTable();
  };
  renderCounts("#counts", phases, "phase", meaning, pick("phase", "#filter-phase"));
  renderCounts("#by-product", Object.entries(summary.byProduct || {}), "product", null, pick("product", "#filter-product"));
  renderCounts("#by-mode", Object.entries(summary.byMode || {}), "mode", null, pick("mode", "#filter-mode"));
  fillOptions($("#filter-product"), Object.keys(summary.byProduct || {}), state.overview.product);
  return summary;
}

function fillOptions(select, values, selected) {
  const keep = select.options[0];
  select.replaceChildren(keep);
  for (const value of values) select.append(el("option", { value }, value));
  if (selected && !values.includes(selected)) select.append(el("option", { value: selected }, selected));
  select.value = selected || "";
}

function listQuery(limit, next) {
  const o = state.overview;
  const params = new URLSearchParams();
  params.set("limit", String(limit));
  params.set("sort", (o.desc ? "-" : "") + o.sort);
  if (o.q) params.set("q", o.q);
  if (o.phase) params.set("phase", o.phase);
  if (o.product) params.set("product", o.product);
  if (o.mode) params.set("mode", o.mode);
  if (o.label) params.set("labelSelector", o.label);
  if (next) params.set("continue", next);
  return "/api/v1/workspaces?" + params.toString();
}

function row(item) {
  const spec = item.spec || {};
  const status = item.status || {};
  const name = (item.metadata && item.metadata.name) || "";
  const tr = el("tr", { "data-name": name });
  const nameCell = el("td", { "data-label": "Name" });
  nameCell.append(el("a", { href: "#/workspaces/" + encodeURIComponent(name) }, name));
  tr.append(nameCell);
  const productCell = el("td", { "data-label": "Product" });
  if (spec.product) productCell.append(productLink(spec.product));
  tr.append(productCell);
  tr.append(el("td", { "data-label": "Mode" }, spec.mode || ""));
  const phase = el("td", { "data-label": "Phase" });
  phase.append(phaseBadge(status.phase));
  if (suspendedOf(item) && status.phase !== "Suspended") phase.append(el("span", { class: "hint" }, " (suspend requested)"));
  tr.append(phase);
  tr.append(el("td", { "data-label": "Message", class: "message" }, messageOf(item)));
  const hostCell = el("td", { "data-label": "Host" });
  const host = hostOf(item);
  if (host) hostCell.append(el("a", { href: "https://" + host + "/", rel: "noopener noreferrer", target: "_blank" }, host));
  tr.append(hostCell);
  const versionCell = el("td", { "data-label": "Version" }, versionOf(item));
  const rev = revisionBadge(item);
  if (rev) versionCell.append(" ", rev);
  tr.append(versionCell);
  const revision = status.revision || "";
  tr.append(el("td", { "data-label": "Revision", title: revision, class: "mono" }, revision.slice(0, 8)));
  const last = el("td", { "data-label": "Last reconcile" });
  last.append(ago(status.lastReconcileTime));
  tr.append(last);
  const ageCell = el("td", { "data-label": "Age" });
  ageCell.append(age(createdOf(item)));
  tr.append(ageCell);
  return tr;
}

function describeFilters() {
  const o = state.overview;
  const parts = [];
  if (o.q) parts.push("matching “" + o.q + "”");
  if (o.phase) parts.push("phase " + o.phase);
  if (o.product) parts.push("product " + o.product);
  if (o.mode) parts.push("mode " + o.mode);
  if (o.label) parts.push("label " + o.label);
  return parts.length ? " (" + parts.join(", ") + ")" : "";
}

function showPage(page, append) {
  const o = state.overview;
  const tbody = $("#workspaces tbody");
  const items = page.items || [];
  o.items = append ? o.items.concat(items) : items;
  const rows = items.map(row);
  if (append) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  o.loaded = (append ? o.loaded : 0) + rows.length;
  o.next = (page.metadata && page.metadata.continue) || "";
  const left = (page.metadata && page.metadata.remainingItemCount) || 0;
  const status = $("#status");
  status.className = "";
  status.textContent = o.loaded === 0
    ? "No workspace" + describeFilters() + "."
    : o.loaded + " of " + (o.loaded + left) + " workspaces" + describeFilters();
  const more = $("#more");
  more.hidden = !o.next;
  more.textContent = "Load " + Math.min(PAGE_SIZE, left) + " more";
}

// The table from its first row again (filters or sort changed).
async function reloadTable() {
  const o = state.overview;
  const generation = ++o.generation;
  updateSortHeaders();
  try {
    const page = (await api(listQuery(PAGE_SIZE))).body;
    if (generation !== o.generation) return;  // a newer query is on its way
    showPage(page, false);
  } catch (error) {
    if (generation === o.generation) showError($("#status"), error);
  }
}

async function loadMore() {
  const o = state.overview;
  if (!o.next) return;
  const more = $("#more");
  more.disabled = true;
  const generation = o.generation;
  try {
    const page = (await api(listQuery(PAGE_SIZE, o.next))).body;
    if (generation === o.generation) showPage(page, true);
  } catch (error) {
    showError($("#status"), error);
  } finally {
    more.disabled = false;
  }
}

function updateSortHeaders() {
  const o = state.overview;
  const select = $("#filter-sort");
  const wanted = (o.desc ? "-" : "") + o.sort;
  if ([...select.options].some((option) => option.value === wanted)) select.value = wanted;
  for (const button of document.querySelectorAll("#workspaces th button[data-sort]")) {
    const th = button.parentElement;
    if (button.dataset.sort === o.sort) {
      th.setAttribute("aria-sort", o.desc ? "descending" : "ascending");
      button.dataset.dir = o.desc ? "desc" : "asc";
    } else {
      th.removeAttribute("aria-sort");
      delete button.dataset.dir;
    }
  }
}

async function showOverview() {
  const status = $("#status");
  if (!status.textContent || status.textContent === "Loading…") status.textContent = "Loading…";
  const o = state.overview;
  o.generation++;
  const generation = o.generation;
  updateSortHeaders();
  // The first screen: the counts and the first page at once, never the whole fleet.
  const [page] = await Promise.all([
    api(listQuery(PAGE_SIZE)).then((r) => r.body).catch((error) => { showError(status, error); return null; }),
    loadSummary().catch((error) => showError(status, error)),
  ]);
  if (page && generation === o.generation) showPage(page, false);
}

// A change: the counts, and the rows already shown (as many as were loaded, so a long list
// keeps its place).
async function refreshOverview() {
  const o = state.overview;
  const limit = Math.min(1000, Math.max(PAGE_SIZE, o.loaded));
  const generation = o.generation;
  const [page] = await Promise.all([
    api(listQuery(limit)).then((r) => r.body),
    loadSummary(),
  ]);
  if (generation !== o.generation) return;
  showPage(page, false);
  const more = $("#more");
  if (!more.hidden) more.textContent = "Load more";
}

function wireOverview() {
  const o = state.overview;
  let typing = 0;
  $("#filters").addEventListener("submit", (event) => event.preventDefault());
  $("#filter-text").addEventListener("input", (event) => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => { o.q = event.target.value.trim(); reloadTable(); }, 250);
  });
  $("#filter-label").addEventListener("change", (event) => { o.label = event.target.value.trim(); reloadTable(); });
  for (const [id, field] of [["#filter-phase", "phase"], ["#filter-product", "product"], ["#filter-mode", "mode"]]) {
    $(id).addEventListener("change", (event) => { o[field] = event.target.value; reloadTable(); });
  }
  const phaseSelect = $("#filter-phase");
  for (const [name, meaning] of PHASES) phaseSelect.append(el("option", { value: name }, name + " (" + meaning + ")"));
  phaseSelect.append(el("option", { value: "Stalled,Degraded" }, "Stalled or Degraded (stuck)"));
  for (const button of document.querySelectorAll("#workspaces th button[data-sort]")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      if (o.sort === key) o.desc = !o.desc;
      else { o.sort = key; o.desc = key === "lastReconcile" || key === "age"; }
      reloadTable();
    });
  }
  $("#filter-sort").addEventListener("change", (event) => {
    const value = event.target.value;
    o.desc = value.startsWith("-");
    o.sort = o.desc ? value.slice(1) : value;
    reloadTable();
  });
  $("#more").addEventListener("click", loadMore);
}

// ---- one workspace ---------------------------------------------------------------------------

function manifestOf(item) {
  const metadata = { name: item.metadata.name };
  if (item.metadata.labels) metadata.labels = item.metadata.labels;
  return { apiVersion: item.apiVersion || "tenantmaster.io/v1alpha1", kind: "Workspace", metadata, spec: item.spec || {} };
}

function renderConditions(item) {
  const tbody = $("#ws-conditions tbody");
  const rows = ((item.status && item.status.conditions) || []).map((c) => {
    const tr = el("tr", { "data-type": c.type });
    tr.append(el("th", { scope: "row" }, c.type));
    const statusCell = el("td", { "data-label": "Status" });
    const good = c.type === "Reconciling" || c.type === "Stalled" ? c.status === "False" : c.status === "True";
    statusCell.append(el("span", { class: "cond " + (good ? "cond-ok" : "cond-bad") }, c.status + (good ? " (fine)" : " (attention)")));
    tr.append(statusCell);
    tr.append(el("td", { "data-label": "Reason" }, c.reason || ""));
    tr.append(el("td", { "data-label": "Message", class: "message" }, c.message || ""));
    const since = el("td", { "data-label": "Since" });
    since.append(ago(c.lastTransitionTime));
    tr.append(since);
    return tr;
  });
  tbody.replaceChildren(...rows);
}

function renderRuns(item) {
  const runs = (item.status && item.status.lastRuns) || [];
  const rows = runs.map((run) => {
    const tr = el("tr");
    const start = el("td", { "data-label": "Start" });
    start.append(el("time", { datetime: run.start, title: run.start }, (run.start || "").replace("T", " ").replace("Z", " UTC")), " ");
    start.append(el("span", { class: "hint" }, "(" + ago(run.start).textContent + ")"));
    tr.append(start);
    tr.append(el("td", { "data-label": "Duration" }, formatSeconds(run.durationSeconds)));
    const ok = run.result === "Succeeded";
    tr.append(el("td", { "data-label": "Result", class: ok ? "ok" : "bad" }, (run.result || "") + (ok ? "" : " (failed)")));
    tr.append(el("td", { "data-label": "Reason" }, run.reason || ""));
    return tr;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    tr.append(el("td", { colspan: "4", class: "hint" }, "No run yet."));
    rows.push(tr);
  }
  $("#ws-runs tbody").replaceChildren(...rows);
}

function formatSeconds(value) {
  if (typeof value !== "number") return "";
  if (value < 1) return Math.round(value * 1000) + " ms";
  if (value < 120) return value.toFixed(1) + " s";
  return Math.round(value / 60) + " min";
}

function renderEvents(events) {
  const items = events.map((event) => {
    const li = el("li", { class: event.type === "Warning" ? "warning" : "" });
    li.append(ago(event.time), " ");
    li.append(el("strong", {}, (event.type === "Warning" ? "Warning: " : "") + event.reason));
    li.append(" ", el("span", { class: "message" }, event.message));
    return li;
  });
  if (items.length === 0) items.push(el("li", { class: "hint" }, "No event recorded."));
  $("#ws-events").replaceChildren(...items);
}

function renderStack(item) {
  const spec = item.spec || {};
  const node = $("#ws-stack");
  node.replaceChildren();
  const name = item.metadata.name;
  if (spec.mode === "dedicated") {
    const endpoint = spec.dedicated && spec.dedicated.endpoint;
    node.append(el("p", {}, "Stack tm-" + name + " on Portainer endpoint " + (endpoint === undefined ? "(default)" : endpoint) + "."));
    const stack = conditionOf(item, "StackReady");
    const p = el("p");
    if (stack) {
      p.append(el("span", { class: "cond " + (stack.status === "True" ? "cond-ok" : "cond-bad") },
        stack.status === "True" ? "Running (ready)" : "Not ready"), " " + (stack.reason || "") + (stack.message ? ": " + stack.message : ""));
    } else {
      p.append(el("span", { class: "hint" }, "Not deployed yet."));
    }
    node.append(p);
  } else {
    node.append(el("p", {}, "Shared: served by the " + (spec.product || "product") + " runtime; no stack of its own."));
    const binding = conditionOf(item, "BindingReady");
    if (binding) node.append(el("p", {}, "Binding: " + binding.status + " " + (binding.reason || "") + (binding.message ? ": " + binding.message : "")));
  }
}

// The declared schedule. Backups are not taken yet (docs/dashboard.md): the catalog will show here.
function renderBackups(item) {
  const backup = (item.spec && item.spec.backup) || {};
  const node = $("#ws-backups");
  node.replaceChildren(el("p", {}, backup.schedule
    ? "Schedule " + backup.schedule + " (UTC), keep " + (backup.keep === undefined ? "the default" : backup.keep) + "."
    : "No backup schedule declared."));
}

async function renderPlan(item) {
  const node = $("#ws-plan");
  const phase = item.status && item.status.phase;
  if (phase === "Ready" || phase === "Deleting" || !item.spec || !item.spec.product) {
    node.replaceChildren(el("p", { class: "hint" }, phase === "Ready" ? "Converged: nothing to do." : "No plan for this state."));
    return;
  }
  node.replaceChildren(el("p", { class: "hint" }, "Asking the controller…"));
  try {
    const plan = (await api("/api/v1/plan", { method: "POST", json: manifestOf(item) })).body;
    const mine = (plan.items || []).find((p) => p.workspace === item.metadata.name);
    const parts = [];
    if (!mine || mine.converged) parts.push(el("p", {}, "Nothing to do now."));
    if (mine && mine.blocked) parts.push(el("p", { class: "error" }, "Blocked: " + mine.blocked));
    if (mine && (mine.actions || []).length) {
      const list = el("ol");
      for (const action of mine.actions) list.append(el("li", {}, action.kind + ": " + action.description));
      parts.push(list);
    }
    for (const d of plan.diagnostics || []) parts.push(el("p", { class: "error" }, (d.field ? d.field + ": " : "") + d.message));
    node.replaceChildren(...parts);
  } catch (error) {
    node.replaceChildren(el("p", { class: "hint" }, "No plan: " + error.message));
  }
}

function renderActions(item) {
  const box = $("#ws-actions");
  box.replaceChildren();
  if (!isAdmin()) return;  // a viewer gets no buttons (and the API refuses them anyway)
  const name = item.metadata.name;
  const suspended = suspendedOf(item);
  const actions = [
    ["reconcile", "Reconcile now", false],
    ["suspend", "Suspend", suspended],
    ["resume", "Resume", !suspended],
  ];
  for (const [verb, label, disabled] of actions) {
    const button = el("button", { type: "button", id: "action-" + verb, disabled }, label);
    button.addEventListener("click", () => act(name, verb, button));
    box.append(button);
  }
}

async function act(name, verb, button) {
  const status = $("#action-status");
  status.className = "";
  status.textContent = verb === "reconcile" ? "Queuing a run…" : verb + "ing…";
  button.disabled = true;
  try {
    const answer = await api("/api/v1/workspaces/" + encodeURIComponent(name) + "/" + verb, { method: "POST" });
    status.textContent = verb === "reconcile"
      ? "Queued at " + answer.body.queuedAt + "; the run shows below when it ends."
      : (verb === "suspend" ? "Suspended" : "Resumed") + " by " + state.session.principal + ".";
    if (state.live.mode !== "live") {
      // Without the stream, look again a few times.
      for (const wait of [500, 1500, 4000]) window.setTimeout(() => changed([name]), wait);
    }
    if (verb !== "reconcile") await refreshWorkspace();
  } catch (error) {
    showError(status, error);
  } finally {
    button.disabled = false;
    if (verb !== "reconcile") {
      const current = state.workspace;
      if (current) renderActions(current);
    }
  }
}

async function loadWorkspace(name) {
  const [item, events] = await Promise.all([
    api("/api/v1/workspaces/" + encodeURIComponent(name)).then((r) => r.body),
    api("/api/v1/events?limit=30&workspace=" + encodeURIComponent(name)).then((r) => r.body.items || []).catch(() => []),
  ]);
  return { item, events };
}

function renderWorkspace(item, events) {
  const section = $("#workspace-page");
  section.dataset.name = item.metadata.name;
  state.workspace = item;
  $("#ws-name").textContent = item.metadata.name;
  const phase = $("#ws-phase");
  const status = item.status || {};
  phase.replaceChildren(el("span", { class: "hint" }, "Phase: "), phaseBadge(status.phase));
  const meaning = PHASES.find(([n]) => n === status.phase);
  if (meaning) phase.append(el("span", { class: "hint" }, " (" + meaning[1] + ")"));
  if (status.override) phase.append(el("span", { class: "hint" }, " · suspended by " + status.override.by + " " + status.override.at));
  if (status.nextRetry) phase.append(el("span", { class: "hint" }, " · next retry " + status.nextRetry));
  const product = $("#ws-product");
  product.replaceChildren();
  const spec = item.spec || {};
  if (spec.product) {
    product.append(el("span", { class: "hint" }, "Product: "), productLink(spec.product));
    const version = versionOf(item);
    if (version) product.append(el("span", { class: "hint" }, " · version "), version);
    product.append(el("span", { class: "hint" }, " · "));
    product.append(revisionBadge(item) || el("span", { class: "hint", "data-rev": "0" }, "no product revision recorded yet"));
  }
  const ready = conditionOf(item, "Ready");
  const message = $("#ws-message");
  message.textContent = ready && ready.status !== "True"
    ? (ready.reason ? ready.reason + ": " : "") + (ready.message || status.lastError || "")
    : status.lastError || (ready ? ready.message || "" : "");
  message.className = "message" + (ready && ready.status !== "True" ? " error" : "");
  renderActions(item);
  renderConditions(item);
  renderRuns(item);
  renderEvents(events);
  renderStack(item);
  renderBackups(item);
  $("#ws-spec").textContent = JSON.stringify(manifestOf(item), null, 2);
}

async function showWorkspace() {
  const name = state.route.name;
  $("#ws-name").textContent = name;
  $("#action-status").textContent = "";
  for (const id of ["#ws-phase", "#ws-product", "#ws-message", "#ws-actions", "#ws-plan", "#ws-stack", "#ws-backups", "#ws-events", "#ws-spec"]) {
    $(id).replaceChildren();
  }
  $("#ws-conditions tbody").replaceChildren();
  $("#ws-runs tbody").replaceChildren();
  try {
    const { item, events } = await loadWorkspace(name);
    if (state.route.name !== name) return;
    renderWorkspace(item, events);
    await renderPlan(item);
  } catch (error) {
    showError($("#ws-message"), error.status === 404 ? new Error("No workspace named " + name + ".") : error);
  }
}

async function refreshWorkspace() {
  const name = state.route.name;
  const { item, events } = await loadWorkspace(name);
  if (state.route.page !== "workspace" || state.route.name !== name) return;
  renderWorkspace(item, events);
  await renderPlan(item);
}

// ---- sources ---------------------------------------------------------------------------------

async function showSources() {
  const [sources, deliveries] = await Promise.all([
    api("/api/v1/sources").then((r) => r.body.items || []).catch((error) => error),
    api("/api/v1/deliveries?limit=20").then((r) => r.body.items || []).catch((error) => error),
  ]);
  const tbody = $("#sources tbody");
  if (sources instanceof Error) {
    const tr = el("tr");
    tr.append(el("td", { colspan: "6", class: "error" }, "Could not load the sources: " + sources.message));
    tbody.replaceChildren(tr);
  } else {
    tbody.replaceChildren(...sources.map((s) => {
      const tr = el("tr", { "data-source": s.name });
      tr.append(el("th", { scope: "row" }, s.name));
      tr.append(el("td", { "data-label": "Kind" }, s.kind));
      const health = el("td", { "data-label": "Health" });
      health.append(el("span", { class: "cond " + (s.ready ? "cond-ok" : "cond-bad") }, s.ready ? "Healthy" : "Failing"), " " + (s.reason || ""));
      tr.append(health);
      tr.append(el("td", { "data-label": "Revision", class: "mono", title: s.revision || "" }, (s.revision || "").slice(0, 12) || "—"));
      const sync = el("td", { "data-label": "Last sync" });
      sync.append(ago(s.lastSyncTime));
      if (s.lastAttemptTime && s.lastAttemptTime !== s.lastSyncTime) {
        sync.append(el("span", { class: "hint" }, " (last attempt "), ago(s.lastAttemptTime), el("span", { class: "hint" }, ")"));
      }
      tr.append(sync);
      tr.append(el("td", { "data-label": "Message", class: "message" }, s.message || ""));
      return tr;
    }));
  }
  const dbody = $("#deliveries tbody");
  const dstatus = $("#deliveries-status");
  dstatus.className = "";
  if (deliveries instanceof Error) {
    dbody.replaceChildren();
    showError(dstatus, new Error("Could not load the deliveries: " + deliveries.message));
    return;
  }
  dstatus.textContent = deliveries.length ? "" : "No webhook delivery recorded.";
  dbody.replaceChildren(...deliveries.map((d) => {
    const tr = el("tr");
    const when = el("td", { "data-label": "Received" });
    when.append(ago(d.receivedAt));
    tr.append(when);
    tr.append(el("td", { "data-label": "Provider" }, d.provider || "unknown"));
    // accepted: a sync was queued; ignored_*: a valid delivery for nothing we follow; the rest
    // were refused.
    const verdict = d.verdict || "";
    const kind = verdict === "accepted" ? "ok" : verdict.startsWith("ignored") ? "idle" : "bad";
    const words = { ok: " (sync queued)", idle: " (nothing to do)", bad: " (refused)" }[kind];
    tr.append(el("td", { "data-label": "Verdict", class: kind }, verdict + words));
    tr.append(el("td", { "data-label": "Branch" }, d.branch || ""));
    tr.append(el("td", { "data-label": "Revision", class: "mono", title: d.revision || "" }, (d.revision || "").slice(0, 12)));
    return tr;
  }));
}

// ---- products and their rollouts -------------------------------------------------------------

// A rollout's phase in words and colour: "● Halted" with what it means in its title.
function rolloutPhaseBadge(phase) {
  const known = ROLLOUT_PHASES[phase];
  const node = el("span", { class: "phase tone-" + (known ? known[0] : "idle"), "data-phase": phase || "" }, phase || "Unknown");
  if (known) node.title = known[1];
  return node;
}

function rolloutStateBadge(value) {
  const known = ROLLOUT_STATES.find(([key]) => key === value);
  const node = el("span", { class: "state tone-" + (known ? known[1] : "idle"), "data-state": value || "" }, known ? known[2] : value || "unknown");
  if (known) node.title = known[3];
  return node;
}

// The counts by state as a list: "● 2 ready", every state named even at 0.
function renderRolloutCounts(list, counts) {
  list.replaceChildren(...ROLLOUT_STATES.map(([key, tone, words, meaning]) => {
    const n = (counts && counts[key]) || 0;
    const li = el("li", { class: "tally", "data-state": key, title: meaning });
    // A state nobody is in is not coloured: "failed 0" is no alarm.
    li.append(el("span", { class: "state tone-" + (n > 0 ? tone : "idle") }, words), " ", el("span", { class: "count" }, n));
    return li;
  }));
}

function isActive(rollout) { return !!rollout && ROLLOUT_ACTIVE.includes(rollout.phase); }

// "Revision 4 (digest 0123456789ab)"; a null revision is not recorded yet, or unreadable.
function revisionText(revision) {
  if (!revision) return "unknown (not recorded yet, or its files cannot be read)";
  if (!revision.number) return "not numbered yet (digest " + revision.digest + ")";
  return revision.number + " (digest " + revision.digest + ")";
}

// An instant as "2026-12-04 18:00:00 UTC" with how long ago (or how soon) in its hint.
function when(iso) {
  const node = el("span");
  if (!iso) {
    node.append(el("span", { class: "hint" }, "—"));
    return node;
  }
  node.append(el("time", { datetime: iso, title: iso }, iso.replace("T", " ").replace("Z", " UTC")), " ");
  const then = Date.parse(iso);
  if (!Number.isNaN(then) && then > Date.now()) {
    // span() counts the time since an instant: as long since now - (then - now) as until then.
    node.append(el("span", { class: "hint" }, "(in " + span(Date.now() - (then - Date.now())) + ")"));
  } else {
    const hint = el("span", { class: "hint" }, "(");
    hint.append(ago(iso), ")");
    node.append(hint);
  }
  return node;
}

function policyText(policy) {
  if (!policy) return "No rollout policy: a new revision reaches every workspace at once.";
  const waves = (policy.waves || []).map((w) => {
    if (w.percent !== undefined) return w.percent + " %";
    const labels = (w.selector && w.selector.matchLabels) || {};
    return Object.entries(labels).map(([k, v]) => k + "=" + v).join(",") || "selector";
  });
  // Workspaces no wave took form an implicit last wave (docs/rollouts.md#the-policy).
  const parts = ["Waves: " + (waves.length ? waves.join(" → ") + " → the rest" : "one")];
  if (policy.pauseBetweenWaves) parts.push("pause between waves " + policy.pauseBetweenWaves);
  if (policy.maxUnavailable !== undefined) parts.push("at most " + policy.maxUnavailable + " moving at once");
  if (policy.failureBudget !== undefined) parts.push("halts at " + policy.failureBudget + " failed in a wave");
  if (policy.readyTimeout) parts.push("ready within " + policy.readyTimeout);
  if (policy.healthCheck && policy.healthCheck.path) parts.push("health check " + policy.healthCheck.path);
  return parts.join("; ") + ".";
}

// #/products: each product with its revision and its latest rollout's summary.
async function showProducts() {
  const status = $("#products-status");
  status.className = "";
  let items;
  try {
    items = (await api("/api/v1/products")).body.items || [];
  } catch (error) {
    $("#products tbody").replaceChildren();
    showError(status, error.status === 503 ? new Error("Not known here: " + error.message) : error);
    return;
  }
  state.products = Object.fromEntries(items.map((p) => [p.name, p]));
  status.textContent = items.length ? items.length + (items.length === 1 ? " product" : " products") : "No product is declared.";
  $("#products tbody").replaceChildren(...items.map((p) => {
    const r = p.rolloutStatus;
    const tr = el("tr", { "data-product": p.name });
    const name = el("th", { scope: "row" });
    name.append(productLink(p.name));
    if (p.displayName) name.append(el("span", { class: "hint" }, " " + p.displayName));
    tr.append(name);
    tr.append(el("td", { "data-label": "Default version" }, p.defaultVersion || ""));
    const revision = el("td", { "data-label": "Revision" });
    if (p.revision && p.revision.number) {
      revision.append(el("span", {}, String(p.revision.number)), " ", el("span", { class: "hint mono" }, p.revision.digest));
    } else {
      revision.append(el("span", { class: "hint" }, p.revision ? "not numbered yet" : "unknown"));
    }
    tr.append(revision);
    const phase = el("td", { "data-label": "Rollout" });
    if (r) {
      phase.append(rolloutPhaseBadge(r.phase));
      if (r.revision) phase.append(el("span", { class: "hint" }, " to revision " + r.revision));
    } else {
      phase.append(el("span", { class: "hint" }, "none"));
    }
    tr.append(phase);
    tr.append(el("td", { "data-label": "Wave" }, r ? r.currentWave + " of " + r.waveCount : ""));
    const counts = el("td", { "data-label": "Rollout's workspaces" });
    if (r) {
      const list = el("ul", { class: "counts", "aria-label": "The rollout's workspaces of " + p.name + " by state" });
      renderRolloutCounts(list, r.counts);
      counts.append(list);
    }
    tr.append(counts);
    tr.append(el("td", { "data-label": "Workspaces" }, p.workspaces === undefined ? "" : p.workspaces));
    return tr;
  }));
  if (items.some((p) => isActive(p.rolloutStatus))) startRolloutPoll();
  else stopRolloutPoll();
}

// Whether the open product's rollout holds one of these workspaces.
function rolloutHas(names) {
  const s = state.rollout.status;
  const rollout = s && s.rollout;
  if (!rollout) return false;
  return (rollout.workspaces || []).some((w) => names.includes(w.name));
}

function startRolloutPoll() {
  if (state.rollout.poller) return;
  state.rollout.poller = window.setInterval(() => {
    if (state.route.page === "product" || state.route.page === "products") changed(null);
    else stopRolloutPoll();
  }, ROLLOUT_POLL_MS);
}

function stopRolloutPoll() {
  if (!state.rollout.poller) return;
  window.clearInterval(state.rollout.poller);
  state.rollout.poller = 0;
}

function fact(list, key, label, value) {
  const dd = el("dd", { "data-field": key });
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  list.append(el("dt", {}, label), dd);
}

// The product's page from its rollout status (GET /api/v1/products/NAME/rollout; the same object
// a verb answers).
function renderProduct(name, s) {
  state.rollout.status = s;
  $("#product-page").dataset.name = name;
  const product = state.products && state.products[name];
  const about = $("#pr-about");
  about.textContent = product
    ? [product.displayName, "default version " + product.defaultVersion, "from source " + product.source, product.workspaces + " workspaces"].filter(Boolean).join(" · ")
    : "";
  $("#pr-revision").replaceChildren(el("span", { class: "hint" }, "Newest revision: "), el("span", { "data-field": "revision" }, revisionText(s.revision)));
  const refused = $("#pr-refused");
  refused.textContent = s.refused
    ? "Revision " + s.refused.revision + " was refused (" + (s.refused.reason || "RolloutRefused") + "): " + s.refused.message
    : "";
  const rollout = s.rollout;
  const facts = $("#pr-rollout");
  facts.replaceChildren();
  $("#pr-none").hidden = !!rollout;
  $("#pr-none").textContent = rollout ? "" : "No rollout has started for this product (without a rollout policy, a new revision reaches every workspace at once).";
  if (rollout) {
    const phase = el("span");
    phase.append(rolloutPhaseBadge(rollout.phase));
    const meaning = ROLLOUT_PHASES[rollout.phase];
    const paused = rollout.phase === "Paused" && rollout.pausedByPerson ? "paused by a person: Resume goes on" : meaning && meaning[1];
    if (paused) phase.append(el("span", { class: "hint" }, " (" + paused + ")"));
    fact(facts, "phase", "Phase", phase);
    fact(facts, "revision", "Revision", (rollout.previousRevision ? rollout.previousRevision + " → " : "") + rollout.revision);
    fact(facts, "wave", "Wave", rollout.currentWave + " of " + rollout.waveCount);
    if (rollout.pausedUntil || rollout.pausedByPerson) {
      const until = el("span");
      if (rollout.pausedByPerson) until.append("by a person", rollout.pausedUntil ? "; the pause between waves ends " : "");
      if (rollout.pausedUntil) until.append(when(rollout.pausedUntil));
      fact(facts, "paused", "Paused", until);
    }
    fact(facts, "started", "Started", when(rollout.startedAt));
    fact(facts, "finished", "Finished", rollout.finishedAt ? when(rollout.finishedAt) : el("span", { class: "hint" }, "not yet"));
  }
  const counts = $("#pr-counts");
  counts.hidden = !rollout;
  if (rollout) renderRolloutCounts(counts, rollout.counts);
  else counts.replaceChildren();
  renderRolloutActions(name, rollout);
  const rows = ((rollout && rollout.workspaces) || []).map((w) => {
    const tr = el("tr", { "data-name": w.name, "data-state": w.state });
    const nameCell = el("th", { scope: "row" });
    nameCell.append(el("a", { href: "#/workspaces/" + encodeURIComponent(w.name) }, w.name));
    tr.append(nameCell);
    tr.append(el("td", { "data-label": "Wave" }, w.wave));
    const stateCell = el("td", { "data-label": "State" });
    stateCell.append(rolloutStateBadge(w.state));
    if (w.attempt > 1) stateCell.append(el("span", { class: "hint" }, " (attempt " + w.attempt + ")"));
    tr.append(stateCell);
    tr.append(el("td", { "data-label": "From revision" }, w.fromRevision || ""));
    // The values in spans of their own: on a phone the cell's label (td::before) keeps the
    // page's font and colour, and an empty cell is left out.
    const valueCell = (label, value, cls) => {
      const td = el("td", { "data-label": label, class: label === "Reason" ? "message" : undefined });
      if (value) td.append(el("span", { class: cls }, value));
      return td;
    };
    tr.append(valueCell("Reason", w.reason, w.state === "failed" ? "error" : undefined));
    tr.append(valueCell("Pre-migration backup", w.preMigrationBackup, "mono"));
    tr.append(valueCell("Restore", w.restore, "mono"));
    return tr;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    tr.append(el("td", { colspan: "7", class: "hint" }, rollout ? "The rollout has no workspace." : "No rollout."));
    rows.push(tr);
  }
  $("#pr-workspaces tbody").replaceChildren(...rows);
  $("#pr-policy").textContent = product ? policyText(product.rollout) : "";
  if (isActive(rollout)) startRolloutPoll();
  else stopRolloutPoll();
}

function renderRolloutActions(name, rollout) {
  const box = $("#pr-actions");
  if (state.rollout.busy) return;  // a verb in flight keeps its buttons
  // Drawn once per product (a refresh keeps them, and the focus on them); the server decides
  // whether a verb applies in the rollout's phase.
  const wanted = isAdmin() && rollout ? name : "";
  if ((box.dataset.product || "") === wanted && (wanted === "" || box.children.length)) return;
  box.dataset.product = wanted;
  box.replaceChildren();
  if (!wanted) return;  // a viewer gets no buttons (and the API refuses them anyway)
  for (const [verb, label, meaning, confirmFirst] of ROLLOUT_VERBS) {
    const button = el("button", { type: "button", id: "rollout-" + verb, title: meaning, "data-verb": verb }, label);
    button.addEventListener("click", () => steer(name, verb, label, confirmFirst));
    box.append(button);
  }
}

// An admin's verb. The server decides whether it applies in this phase: a refusal (409) says
// why, and is shown as it is.
async function steer(name, verb, label, confirmFirst) {
  const status = $("#pr-action-status");
  if (confirmFirst) {
    const question = verb === "undo"
      ? "Undo the rollout of " + name + "? Its reached workspaces go back to the previous revision and their pre-migration backups are restored (data written since is lost)."
      : "Abort the rollout of " + name + "? Reached workspaces stay where they are; the others stay on the previous revision.";
    if (!window.confirm(question)) {
      status.className = "";
      status.textContent = label + ": not confirmed, nothing sent.";
      return;
    }
  }
  status.className = "";
  status.textContent = label + "…";
  state.rollout.busy = true;
  for (const b of document.querySelectorAll("#pr-actions button")) b.disabled = true;
  try {
    const answer = await api("/api/v1/products/" + encodeURIComponent(name) + "/rollout/" + verb, { method: "POST" });
    state.rollout.busy = false;
    for (const b of document.querySelectorAll("#pr-actions button")) b.disabled = false;
    status.textContent = label + ": done by " + state.session.principal + ".";
    if (state.route.page === "product" && state.route.name === name) renderProduct(name, answer.body);
  } catch (error) {
    state.rollout.busy = false;
    for (const b of document.querySelectorAll("#pr-actions button")) b.disabled = false;
    showError(status, error.status === 409 ? new Error(label + " refused: " + error.message) : error);
  }
}

async function loadRollout(name) {
  return (await api("/api/v1/products/" + encodeURIComponent(name) + "/rollout")).body;
}

async function showProduct() {
  const name = state.route.name;
  state.rollout.status = null;
  state.rollout.busy = false;
  $("#pr-name").textContent = name;
  for (const id of ["#pr-about", "#pr-revision", "#pr-rollout", "#pr-counts", "#pr-actions", "#pr-policy"]) $(id).replaceChildren();
  delete $("#pr-actions").dataset.product;
  $("#pr-refused").textContent = "";
  $("#pr-action-status").textContent = "";
  $("#pr-none").hidden = true;
  $("#pr-workspaces tbody").replaceChildren();
  try {
    const [s] = await Promise.all([loadRollout(name), loadProducts()]);
    if (state.route.page !== "product" || state.route.name !== name) return;
    renderProduct(name, s);
  } catch (error) {
    const message = $("#pr-refused");
    message.textContent = error.status === 404 ? "No product named " + name + "." : "Could not load the rollout: " + error.message;
  }
}

async function refreshProduct() {
  const name = state.route.name;
  const s = await loadRollout(name);
  if (state.route.page !== "product" || state.route.name !== name) return;
  renderProduct(name, s);
}

// ---- create a workspace ----------------------------------------------------------------------

async function loadProducts() {
  try {
    const items = (await api("/api/v1/products")).body.items || [];
    state.products = Object.fromEntries(items.map((p) => [p.name, p]));
  } catch (error) {
    state.products = null;  // a standby does not know them: versions show empty
  }
}

function clearCreateErrors() {
  for (const node of document.querySelectorAll("#create .field-error")) node.textContent = "";
  for (const node of document.querySelectorAll("#create [aria-invalid]")) node.removeAttribute("aria-invalid");
  $("#create-error").textContent = "";
}

function fieldError(field, message) {
  const node = $("#create-" + field + "-error");
  const input = $("#create-" + field);
  if (!node || !input) return false;
  node.textContent = node.textContent ? node.textContent + " " + message : message;
  input.setAttribute("aria-invalid", "true");
  return true;
}

function syncModes() {
  const product = state.products && state.products[$("#create-product").value];
  const mode = $("#create-mode");
  const modes = product && product.modes && product.modes.length ? product.modes : ["shared", "dedicated"];
  const current = mode.value;
  mode.replaceChildren(...modes.map((m) => el("option", { value: m }, m)));
  mode.value = modes.includes(current) ? current : modes[0];
  $("#create-endpoint-row").hidden = mode.value !== "dedicated";
}

async function showCreate() {
  clearCreateErrors();
  await loadProducts();
  const select = $("#create-product");
  const names = state.products ? Object.keys(state.products) : [];
  select.replaceChildren(...names.map((n) => el("option", { value: n }, n + (state.products[n].displayName ? " (" + state.products[n].displayName + ")" : ""))));
  if (names.length === 0) {
    $("#create-error").textContent = "No product is known (a standby cannot create workspaces; ask the leader).";
  }
  syncModes();
}

function createManifest() {
  const value = (id) => $("#create-" + id).value.trim();
  const manifest = {
    apiVersion: "tenantmaster.io/v1alpha1",
    kind: "Workspace",
    metadata: { name: value("name") },
    spec: { product: value("product"), mode: value("mode") },
  };
  if (value("plan")) manifest.metadata.labels = { plan: value("plan") };
  if (value("subdomain")) manifest.spec.subdomain = value("subdomain");
  const limit = value("connection-limit");
  if (limit !== "" && limit !== "-1") manifest.spec.database = { connectionLimit: Number(limit) };
  if (value("backup-schedule")) manifest.spec.backup = { schedule: value("backup-schedule") };
  if (manifest.spec.mode === "dedicated") manifest.spec.dedicated = { endpoint: Number(value("endpoint") || "1") };
  return manifest;
}

async function submitCreate(event) {
  event.preventDefault();
  clearCreateErrors();
  const manifest = createManifest();
  const name = manifest.metadata.name;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 40) {
    fieldError("name", "A name is 1 to 40 lower-case letters, digits and '-', starting and ending with a letter or digit.");
    $("#create-name").focus();
    return;
  }
  const button = $("#create button[type=submit]");
  button.disabled = true;
  try {
    // A form that creates never replaces: an existing name is refused here.
    const exists = await api("/api/v1/workspaces/" + encodeURIComponent(name)).then(() => true, (error) => {
      if (error.status === 404) return false;
      throw error;
    });
    if (exists) {
      fieldError("name", "A workspace named " + name + " exists already.");
      return;
    }
    await api("/api/v1/workspaces/" + encodeURIComponent(name), { method: "PUT", json: manifest });
    window.location.hash = "#/workspaces/" + encodeURIComponent(name);
  } catch (error) {
    const findings = (error.body && error.body.details) || [];
    let placed = false;
    if (Array.isArray(findings)) {
      for (const finding of findings) {
        const field = finding.field || "";
        const match = FIELD_OF_FINDING.filter(([prefix]) => field === prefix || field.startsWith(prefix + ".") || field.startsWith(prefix + "["))
          .sort((a, b) => b[0].length - a[0].length)[0];
        if (match && fieldError(match[1], finding.message)) placed = true;
        else $("#create-error").textContent += (field ? field + ": " : "") + finding.message + " ";
      }
    }
    if (!placed && !$("#create-error").textContent) $("#create-error").textContent = error.message;
    const first = document.querySelector("#create [aria-invalid]");
    if (first) first.focus();
  } finally {
    button.disabled = false;
  }
}

// ---- start -----------------------------------------------------------------------------------

async function start() {
  state.session = (await api("/api/v1/session")).body;
  $("#who").textContent = "Logged in as " + state.session.principal + " (" + state.session.role + ")";
  $("#logout-csrf").value = state.session.csrfToken || "";
  // A server without tokens (loopback only) has no session to end.
  $("#logout").hidden = !state.session.csrfToken;
  if (isAdmin()) {
    const link = el("a", { id: "nav-new", href: "#/new" }, "New workspace");
    $("nav").append(link);
  }
  wireOverview();
  $("#create").addEventListener("submit", submitCreate);
  $("#create-product").addEventListener("change", syncModes);
  $("#create-mode").addEventListener("change", () => { $("#create-endpoint-row").hidden = $("#create-mode").value !== "dedicated"; });
  document.addEventListener("visibilitychange", scheduleRefresh);
  window.addEventListener("hashchange", navigate);
  // The products give the Version column its defaults: the rows already shown are drawn again
  // from what was fetched, without asking for them again.
  loadProducts().then(() => {
    if (state.products && state.overview.items.length) {
      $("#workspaces tbody").replaceChildren(...state.overview.items.map(row));
    }
  });
  startStream();
  window.setInterval(tick, 15000);
  await navigate();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((error) => {
    const status = $("#status");
    $("#overview").hidden = false;
    showError(status, new Error("Could not start: " + error.message));
    setReady(true);
  });
});
