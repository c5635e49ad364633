// The dashboard's two measurements (issue 14), run by bench/dashboard_bench.sh on the operator it
// started: `first-screen` and `cpu` (that script says what each measures). puppeteer-core comes
// from tests/browser/node_modules (scripts/install-deps.sh), chromium from Debian.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "tests", "browser", "package.json"));
const puppeteer = require("puppeteer-core");

const BASE = process.env.TM_URL;
const TOKEN = process.env.TM_ADMIN_TOKEN;
const PID = process.env.TM_DAEMON_PID;
const CLK_TCK = Number(process.env.TM_CLK_TCK || 100);
const TABS = Number(process.env.TM_TABS || 20);
const SECONDS = Number(process.env.TM_SECONDS || 60);
const COUNT = Number(process.env.TM_COUNT || 0);
const RUNS = Number(process.env.TM_RUNS || 7);
const WAIT = 60000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const ms = (x) => `${x.toFixed(0)} ms`;

/** utime + stime of the daemon, in seconds. */
function cpuSeconds() {
  const stat = readFileSync(`/proc/${PID}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;  // fields 14 and 15 of stat
}

async function launch() {
  return puppeteer.launch({
    executablePath: process.env.TM_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
      // None of the windows is throttled in the background.
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows"],
    defaultViewport: { width: 1280, height: 800 },
  });
}

async function login(page) {
  await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
  await page.type("input#secret", TOKEN);
  await Promise.all([
    page.waitForNavigation({ waitUntil: "domcontentloaded" }),
    page.click("form#login button[type=submit]"),
  ]);
  if (!(await page.$("#who"))) throw new Error("the login failed");
}

// Records, in the page, the time from the navigation's start (performance.now()'s origin) to
// the moment body[data-ready] becomes "1".
const RECORD_READY = () => {
  window.__tmReadyAt = null;
  const observer = new MutationObserver(() => {
    if (document.body && document.body.dataset.ready === "1" && window.__tmReadyAt === null) {
      window.__tmReadyAt = performance.now();
      window.__tmRows = document.querySelectorAll("table#workspaces tbody tr").length;
    }
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
};

async function firstScreen() {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await login(page);
    await page.setCacheEnabled(false);  // every run fetches the assets again, as a first visit
    await page.evaluateOnNewDocument(RECORD_READY);
    const cookie = (await page.cookies(BASE)).map((c) => `${c.name}=${c.value}`).join("; ");
    const times = [];
    let requests = [];
    let rows = 0;
    for (let run = 0; run < RUNS; run += 1) {
      const seen = [];
      const onRequest = (r) => { if (r.url().includes("/api/v1/") && !r.url().includes("/api/v1/stream")) seen.push(r.url()); };
      await page.goto("about:blank");  // a new document each run, not a hash change
      page.on("request", onRequest);
      await page.goto(BASE + "/", { waitUntil: "domcontentloaded" });
      await page.waitForFunction(() => typeof window.__tmReadyAt === "number", { timeout: WAIT });
      page.off("request", onRequest);
      times.push(await page.evaluate(() => window.__tmReadyAt));
      rows = await page.evaluate(() => window.__tmRows);
      requests = seen;
    }
    // The baseline: the API requests the page made before it was ready (the last run's; not its
    // event stream), one after the other with the page's cookie, without a browser.
    const base = [];
    for (let run = 0; run < RUNS; run += 1) {
      const t0 = performance.now();
      for (const url of requests) {
        const res = await fetch(url, { headers: { Cookie: cookie, Accept: "application/json" } });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`${url}: ${res.status}`);
      }
      base.push(performance.now() - t0);
    }
    console.log(`fleet: ${COUNT} workspaces; ${RUNS} navigations, cache disabled`);
    console.log(`the page's API requests: ${requests.map((u) => u.slice(BASE.length)).join(" ")}`);
    console.log(`first screen (navigation to body[data-ready=1], ${rows} rows): median ` +
      `${ms(median(times))}, max ${ms(Math.max(...times))}  [${times.map(ms).join(", ")}]`);
    console.log(`baseline (those requests with fetch, no browser): median ${ms(median(base))}, ` +
      `max ${ms(Math.max(...base))}`);
    console.log(`ratio (median): ${(median(times) / median(base)).toFixed(1)}x; target: under ` +
      `1000 ms: ${Math.max(...times) < 1000 ? "met" : "NOT met"} (max)`);
  } finally {
    await browser.close();
  }
}

/** A suspend or a resume every second, in turn on ws-00001.. ; returns a stop function. */
function churn() {
  let i = 0;
  let stopped = false;
  let failures = 0;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const name = `ws-${String((Math.floor(i / 2) % Math.min(COUNT, 50)) + 1).padStart(5, "0")}`;
      const verb = i % 2 === 0 ? "suspend" : "resume";
      const res = await fetch(`${BASE}/api/v1/workspaces/${name}/${verb}`, {
        method: "POST", headers: { Authorization: `Bearer ${TOKEN}` },
      }).catch(() => null);
      if (!res || !res.ok) failures += 1;
      if (res) await res.arrayBuffer();
      i += 1;
      await sleep(Math.max(0, 1000 - (Date.now() - started)));
    }
  })();
  return async () => { stopped = true; await loop; return { calls: i, failures }; };
}

async function window_(label) {
  const stop = churn();
  await sleep(2000);  // the first calls' reconciles under way
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const used = cpuSeconds() - c0;
  const wall = (performance.now() - t0) / 1000;
  const { calls, failures } = await stop();
  const share = (100 * used) / wall;
  console.log(`${label}: daemon CPU ${used.toFixed(2)} s over ${wall.toFixed(1)} s = ` +
    `${share.toFixed(2)} % of one core (${calls} suspend/resume calls, ${failures} failed)`);
  return share;
}

async function cpu() {
  console.log(`fleet: ${COUNT} workspaces; ${TABS} tabs; ${SECONDS} s windows; churn: one ` +
    "suspend or resume per second");
  // The fleet's first retries (every workspace Degraded, backing off) die down first.
  const settle = Number(process.env.TM_SETTLE || 60);
  console.log(`settling for ${settle} s`);
  await sleep(settle * 1000);
  const idle = await window_("0 dashboards (before)");
  const browser = await launch();
  let busy;
  try {
    // Each dashboard in a window of its own (a browser context): a background tab of one window
    // is hidden, and the page does not refresh while hidden. One login; its cookie is given to
    // every window (one session, TABS streams).
    const first = await (await browser.createBrowserContext()).newPage();
    await login(first);
    const cookies = await first.cookies(BASE);
    const pages = [first];
    for (let t = 1; t < TABS; t += 1) {
      const page = await (await browser.createBrowserContext()).newPage();
      await page.setCookie(...cookies);
      pages.push(page);
    }
    for (const page of pages) {
      await page.goto(BASE + "/#/", { waitUntil: "domcontentloaded" });
      await page.waitForFunction(() => document.body.dataset.ready === "1", { timeout: WAIT });
    }
    const hidden = await Promise.all(pages.map((p) => p.evaluate(() => document.hidden)));
    if (hidden.some(Boolean)) throw new Error(`hidden dashboards: ${hidden.filter(Boolean).length}`);
    const live = await Promise.all(pages.map((p) => p.$eval("#live", (n) => n.textContent.trim())));
    const counts = live.reduce((m, s) => ({ ...m, [s]: (m[s] || 0) + 1 }), {});
    console.log(`${TABS} overviews open; #live: ${JSON.stringify(counts)}`);
    await sleep(3000);
    busy = await window_(`${TABS} dashboards`);
    const after = await Promise.all(pages.map((p) => p.$eval("#live", (n) => n.textContent.trim())));
    console.log(`#live after: ${JSON.stringify(after.reduce((m, s) => ({ ...m, [s]: (m[s] || 0) + 1 }), {}))}`);
  } finally {
    await browser.close();
  }
  await sleep(3000);
  const idle2 = await window_("0 dashboards (after)");
  const without = (idle + idle2) / 2;
  const added = busy - without;
  console.log(`added by ${TABS} dashboards: ${added.toFixed(2)} % of one core ` +
    `(${busy.toFixed(2)} - ${without.toFixed(2)}, the mean of before and after); target under 5 %: ` +
    `${added < 5 ? "met" : "NOT met"}`);
}

const mode = process.argv[2];
if (mode === "first-screen") await firstScreen();
else if (mode === "cpu") await cpu();
else { console.error("usage: dashboard_bench.mjs first-screen|cpu"); process.exit(2); }
