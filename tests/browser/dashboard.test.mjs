// The dashboard in a real browser (issue 14): Debian's chromium, headless, driven by
// puppeteer-core against the built tenant-operator that tests/browser/run.py started on its
// fleet (alpha and bravo Ready, broken Stalled on a failing migration; a viewer, viola). Each
// scenario runs in its own browser context (its own cookies) and fails on its own; the page's
// DOM is the one docs/api.md#the-dashboard describes. Screenshots go to $TM_ARTIFACTS.
//
//   TM_URL=http://127.0.0.1:PORT TM_ADMIN_TOKEN=... TM_VIEWER_NAME=... TM_VIEWER_PASSWORD=...
//   TM_ARTIFACTS=DIR node tests/browser/dashboard.test.mjs [scenario substring...]
import assert from "node:assert/strict";
import path from "node:path";
import puppeteer from "puppeteer-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/browser/run.py sets it)`);
  return value;
};
const BASE = env("TM_URL");
const ADMIN_TOKEN = env("TM_ADMIN_TOKEN");
const VIEWER = { name: env("TM_VIEWER_NAME"), password: env("TM_VIEWER_PASSWORD") };
const ARTIFACTS = env("TM_ARTIFACTS");
const CHROMIUM = process.env.TM_CHROMIUM || "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const WAIT = 15000;

// --- helpers ------------------------------------------------------------------------------

/** The API from the test itself (not the page), with the admin token or a cookie. */
async function call(method, route, { token = ADMIN_TOKEN, cookie, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token && !cookie) headers.Authorization = `Bearer ${token}`;
  if (cookie) headers.Cookie = cookie;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(BASE + route, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: "manual",
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function sessionCookie(page) {
  const cookies = await page.cookies(BASE);
  const found = cookies.find((c) => c.name === "tm_session" || c.name === "__Host-tm_session");
  return found ? `${found.name}=${found.value}` : null;
}

/** Fills the login form at / and submits it; returns the answer to the POST. */
async function submitLogin(page, secret, name = "") {
  await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("form#login");
  await page.$eval("input#name", (input, value) => { input.value = value; }, name);
  await page.type("input#secret", secret);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url() === BASE + "/login" && r.request().method() === "POST"),
    page.waitForNavigation({ waitUntil: "domcontentloaded" }),
    page.click("form#login button[type=submit]"),
  ]);
  return answer;
}

/** Logs in and waits for the fleet's page to say who is logged in. */
async function login(page, secret, name = "") {
  const answer = await submitLogin(page, secret, name);
  assert.equal(answer.status(), 303, "a good login answers 303 to /");
  await page.waitForFunction(() => (document.querySelector("#who")?.textContent || "") !== "",
    { timeout: WAIT });
}

/** Waits until the current route's first data is rendered (body[data-ready="1"]). */
async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready === "1", { timeout: WAIT });
}

async function go(page, hash) {
  await page.evaluate((h) => { document.body.dataset.ready = ""; window.location.hash = h; }, hash);
  await ready(page);
}

const text = (page, selector) =>
  page.$eval(selector, (node) => node.textContent.trim());
const count = (page, selector) => page.$$eval(selector, (nodes) => nodes.length);
const rowPhase = (page, name) =>
  page.$eval(`table#workspaces tbody tr[data-name="${name}"] td[data-label=Phase] .phase`,
    (node) => node.textContent.trim());

/** Marks the document so that a reload (a new document) is seen. */
const mark = (page) => page.evaluate(() => { window.__tmNotReloaded = true; });
const notReloaded = async (page) =>
  assert.equal(await page.evaluate(() => window.__tmNotReloaded === true), true,
    "the page was reloaded (the update must come without a reload)");

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: false });
}

// --- scenarios ----------------------------------------------------------------------------

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario("without a session, GET / is the login form only", async (page) => {
  const answer = await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
  assert.equal(answer.status(), 200);
  for (const selector of ["form#login", "input#name", "input#secret",
    "form#login button[type=submit]"]) {
    assert.ok(await page.$(selector), `${selector} is missing`);
  }
  for (const selector of ["#overview", "#workspaces", "#who", "#logout"]) {
    assert.equal(await page.$(selector), null, `${selector} is served without a session`);
  }
  // Nor does the API answer the page without a session.
  const status = await page.evaluate(async () => (await fetch("/api/v1/workspaces")).status);
  assert.equal(status, 401);
  // The controls have labels.
  assert.equal(await count(page, "label[for=name]"), 1);
  assert.equal(await count(page, "label[for=secret]"), 1);
});

scenario("a wrong token is refused: the form again, with a notice", async (page) => {
  const answer = await submitLogin(page, "not-the-admin-token-at-all");
  assert.equal(answer.status(), 401);
  assert.ok(await page.$("form#login"), "the login form is not shown again");
  // The notice is an alert inside the form (login.html's <!--tm:notice--> place).
  const notice = await page.$eval("form#login [role=alert]", (n) => ({ text: n.textContent }));
  assert.match(notice.text, /failed/i);
  assert.equal(notice.text.includes("not-the-admin-token-at-all"), false, "the secret is echoed");
  assert.equal(await sessionCookie(page), null, "a refused login set a session cookie");
  assert.equal(await page.$("#who"), null);
});

scenario("the admin logs in with the admin token", async (page) => {
  await login(page, ADMIN_TOKEN);
  assert.match(await text(page, "#who"), /Logged in as .*\(admin\)/);
  const cookie = await page.cookies(BASE);
  const session = cookie.find((c) => c.name === "tm_session");
  assert.ok(session, "no tm_session cookie");
  assert.equal(session.httpOnly, true, "the session cookie is not HttpOnly");
  assert.equal(session.sameSite, "Strict");
  // The page's scripts cannot read it.
  assert.equal(await page.evaluate(() => document.cookie.includes("tm_session")), false);
});

scenario("logout ends the session", async (page) => {
  await login(page, ADMIN_TOKEN);
  const cookie = await sessionCookie(page);
  assert.ok(cookie);
  assert.equal((await call("GET", "/api/v1/session", { cookie })).status, 200);
  await Promise.all([
    page.waitForNavigation({ waitUntil: "domcontentloaded" }),
    page.click("form#logout button[type=submit]"),
  ]);
  assert.ok(await page.$("form#login"), "after logout the login form is not shown");
  assert.equal(await page.$("#who"), null);
  assert.equal(await sessionCookie(page), null, "the cookie was not cleared");
  // The old cookie, sent again by someone who kept it, is refused.
  assert.equal((await call("GET", "/api/v1/session", { cookie })).status, 401);
  assert.equal((await call("GET", "/api/v1/workspaces", { cookie })).status, 401);
  await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
  assert.ok(await page.$("form#login"));
});

scenario("the fleet table shows the workspaces and their phases, stuck first", async (page) => {
  await login(page, ADMIN_TOKEN);
  await ready(page);
  assert.ok(await page.$("section#overview:not([hidden])"), "the overview is not shown");
  const rows = await page.$$eval("table#workspaces tbody tr", (trs) => trs.map((tr) => ({
    name: tr.dataset.name,
    phase: tr.querySelector("td[data-label=Phase] .phase")?.textContent.trim(),
    message: tr.querySelector("td[data-label=Message]")?.textContent || "",
    link: !!tr.querySelector(`a[href="#/workspaces/${tr.dataset.name}"]`),
  })));
  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  for (const [name, phase] of [["alpha", "Ready"], ["bravo", "Ready"], ["broken", "Stalled"]]) {
    assert.ok(byName[name], `no row for ${name} in ${JSON.stringify(rows)}`);
    assert.equal(byName[name].phase, phase, `${name}'s phase`);
    assert.ok(byName[name].link, `${name}'s name is not a link to its page`);
  }
  assert.equal(rows[0].name, "broken", "the stalled workspace is not first by default");
  // Identifiers in a failure are scrubbed (relation "…"); the file and the position are not.
  assert.match(byName.broken.message, /0001_entries\.sql/);
  // The counts by phase.
  const counts = await page.$$eval("#counts li[data-phase]", (lis) => Object.fromEntries(
    lis.map((li) => [li.dataset.phase, li.querySelector(".count")?.textContent.trim()])));
  assert.equal(counts.Stalled, "1", `counts: ${JSON.stringify(counts)}`);
  assert.equal(counts.Ready, "2", `counts: ${JSON.stringify(counts)}`);
  await shot(page, "overview-1280x800.png");
  await page.setViewport(PHONE);
  await page.reload({ waitUntil: "domcontentloaded" });
  await ready(page);
  assert.ok(await page.$('table#workspaces tbody tr[data-name="broken"]'));
  // Usable at phone width: the page does not scroll sideways.
  const overflow = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the page is ${overflow} px wider than a 390 px screen`);
  await shot(page, "overview-390x844.png");
});

scenario("the stalled workspace's page reads its reason", async (page) => {
  await login(page, ADMIN_TOKEN);
  await ready(page);
  await mark(page);
  await Promise.all([
    page.waitForSelector('section#workspace-page[data-name="broken"]:not([hidden])'),
    page.click('table#workspaces tbody tr[data-name="broken"] a[href="#/workspaces/broken"]'),
  ]);
  await ready(page);
  await notReloaded(page);
  assert.equal(await text(page, "h2#ws-name"), "broken");
  assert.equal(await text(page, "#ws-phase .phase"), "Stalled");
  const message = await text(page, "#ws-message");
  assert.match(message, /MigrationFailed/);
  assert.match(message, /0001_entries\.sql.*line 3/);
  const readyRow = await page.$eval('table#ws-conditions tbody tr[data-type="Ready"]',
    (tr) => tr.textContent);
  assert.match(readyRow, /MigrationFailed/);
  assert.ok(await count(page, "table#ws-runs tbody tr") >= 1, "no run listed");
  await shot(page, "workspace-broken-1280x800.png");
});

scenario("reconcile now: a new run appears without a reload", async (page) => {
  await login(page, ADMIN_TOKEN);
  await go(page, "#/workspaces/alpha");
  await mark(page);
  const runs = () => page.$$eval("table#ws-runs tbody tr", (trs) => ({
    rows: trs.length,
    newest: trs[0]?.querySelector("td[data-label=Start]")?.textContent.trim() || "",
  }));
  const before = await runs();
  assert.ok(before.rows >= 1, "alpha has no run listed");
  await page.click("button#action-reconcile");
  await page.waitForFunction((old) => {
    const trs = document.querySelectorAll("table#ws-runs tbody tr");
    const newest = trs[0]?.querySelector("td[data-label=Start]")?.textContent.trim() || "";
    return trs.length > old.rows || newest !== old.newest;
  }, { timeout: 30000 }, before);
  await notReloaded(page);
  const after = await runs();
  assert.notDeepEqual(after, before);
  assert.notEqual(await text(page, "#action-status"), "", "#action-status says nothing");
  await shot(page, "workspace-alpha-1280x800.png");
});

scenario("a viewer sees no action buttons, and the API refuses the viewer's writes", async (page) => {
  await login(page, VIEWER.password, VIEWER.name);
  assert.match(await text(page, "#who"), new RegExp(`${VIEWER.name} \\(viewer\\)`));
  await ready(page);
  assert.ok(await page.$('table#workspaces tbody tr[data-name="alpha"]'), "the viewer sees no fleet");
  assert.equal(await page.$("a#nav-new"), null, "a viewer is offered the create form");
  await go(page, "#/workspaces/alpha");
  assert.equal(await text(page, "h2#ws-name"), "alpha");
  for (const id of ["action-reconcile", "action-suspend", "action-resume"]) {
    assert.equal(await page.$(`button#${id}`), null, `a viewer sees button#${id}`);
  }
  // The page's own fetch, with the viewer's session and its CSRF token: 403.
  const status = await page.evaluate(async () => {
    const session = await (await fetch("/api/v1/session")).json();
    const res = await fetch("/api/v1/workspaces/alpha/reconcile",
      { method: "POST", headers: { "X-CSRF-Token": session.csrfToken || "" } });
    return res.status;
  });
  assert.equal(status, 403);
});

scenario("live: by the event stream, a change made elsewhere shows without a reload",
  async (page) => {
  await login(page, ADMIN_TOKEN);
  await ready(page);
  // Connected by its event stream (GET /api/v1/stream), not by the polling fallback.
  const streams = [];
  page.on("response", (r) => {
    if (r.url().endsWith("/api/v1/stream")) streams.push(`${r.status()} ${r.headers()["content-type"]}`);
  });
  await page.reload({ waitUntil: "domcontentloaded" });
  await ready(page);
  await page.waitForFunction(() => document.querySelector("#live")?.textContent.trim() === "live",
    { timeout: WAIT }).catch(async (error) => {
    throw new Error(`#live is "${await text(page, "#live").catch(() => "(none)")}", not "live" ` +
      `(GET /api/v1/stream: ${streams.join(", ") || "not asked"}): ${error.message}`);
  });
  assert.ok(streams.some((s) => s.startsWith("200 text/event-stream")), `streams: ${streams}`);
  await mark(page);
  assert.equal(await rowPhase(page, "bravo"), "Ready");
  try {
    assert.equal((await call("POST", "/api/v1/workspaces/bravo/suspend")).status, 200);
    await page.waitForFunction(() => document.querySelector(
      'table#workspaces tbody tr[data-name="bravo"] td[data-label=Phase] .phase')
      ?.textContent.trim() === "Suspended", { timeout: 20000 });
    await notReloaded(page);
  } finally {
    await call("POST", "/api/v1/workspaces/bravo/resume");
  }
  await page.waitForFunction(() => document.querySelector(
    'table#workspaces tbody tr[data-name="bravo"] td[data-label=Phase] .phase')
    ?.textContent.trim() === "Ready", { timeout: 30000 });
  await notReloaded(page);
});

scenario("create a workspace from the form: an error beside its field, then the new page",
  async (page) => {
    await login(page, ADMIN_TOKEN);
    await ready(page);
    await page.click("a#nav-new");
    await ready(page);
    assert.ok(await page.$("section#create-page:not([hidden]) form#create"));
    await page.type("#create-name", "charlie");
    await page.select("#create-product", "landing");
    await page.select("#create-mode", "shared");
    await page.type("#create-subdomain", "Not_A_Subdomain!");
    await page.click("form#create button[type=submit]");
    await page.waitForFunction(() =>
      (document.querySelector("#create-subdomain-error")?.textContent || "").trim() !== "",
    { timeout: WAIT });
    assert.match(await text(page, "#create-subdomain-error"), /subdomain/i);
    assert.equal(await page.evaluate(() => window.location.hash), "#/new");
    assert.equal((await call("GET", "/api/v1/workspaces/charlie")).status, 404,
      "a refused form created the workspace");
    await page.$eval("#create-subdomain", (input) => { input.value = ""; });
    await page.type("#create-subdomain", "charlie-shop");
    await page.click("form#create button[type=submit]");
    await page.waitForFunction(() => window.location.hash === "#/workspaces/charlie",
      { timeout: WAIT });
    await page.waitForSelector('section#workspace-page[data-name="charlie"]:not([hidden])');
    await ready(page);
    assert.equal(await text(page, "h2#ws-name"), "charlie");
    const stored = JSON.parse((await call("GET", "/api/v1/workspaces/charlie")).text);
    assert.equal(stored.spec.subdomain, "charlie-shop");
    assert.equal(stored.spec.product, "landing");
  });

// --- the runner ---------------------------------------------------------------------------

const only = process.argv.slice(2);
// TM_BROWSER=firefox: the same scenarios in Debian's firefox-esr (WebDriver BiDi), at
// TM_FIREFOX (default /usr/bin/firefox-esr); otherwise Chromium.
const FIREFOX = process.env.TM_BROWSER === "firefox";
const browser = await puppeteer.launch(FIREFOX
  ? {
    browser: "firefox",
    executablePath: process.env.TM_FIREFOX || "/usr/bin/firefox-esr",
    headless: true,
    defaultViewport: DESKTOP,
  }
  : {
    executablePath: CHROMIUM,
    headless: true,
    // Root in a container: no user namespaces for the sandbox; /dev/shm may be small.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    defaultViewport: DESKTOP,
  });
let failed = 0;
let ran = 0;
try {
  console.log(`# ${await browser.version()} on ${BASE}`);
  for (const { name, fn } of scenarios) {
    if (only.length && !only.some((o) => name.includes(o))) continue;
    ran += 1;
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    const started = Date.now();
    try {
      await fn(page, context);
      assert.deepEqual(errors, [], "the page threw");
      console.log(`ok ${ran} - ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed += 1;
      console.log(`not ok ${ran} - ${name}\n  ${String(error.stack || error).replaceAll("\n", "\n  ")}`);
      if (errors.length) console.log(`  page errors: ${errors.join(" | ")}`);
      const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
      await page.screenshot({ path: path.join(ARTIFACTS, `failed-${slug}.png`) }).catch(() => {});
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
}
console.log(`1..${ran}\n# ${ran - failed} passed, ${failed} failed`);
if (ran === 0) console.log("# no scenario matched");
process.exit(failed === 0 && ran > 0 ? 0 : 1);
