// The dashboard in a real browser (Debian's headless Chromium, driven by
// playwright-core) against the whole stack: bin/optio-up (the supervisor)
// on an isolated Redis prefix and RabbitMQ queue, with its relay on :8090,
// plus a relay of the tests' own on a free port, which they restart.
//
// Run with `make -f web/browser.mk browser-test` (after `make build`).
// Screenshots, the stack's logs and the measured latencies land in
// test-artifacts/browser/.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { launch } from "../lib/chromium.mjs";
import { ensureDir, freePort, httpOK, sleep, start } from "../lib/proc.mjs";
import { subscribe } from "../lib/redis.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.OPTIO_BIN_DIR || join(ROOT, "bin");
const ARTIFACTS = ensureDir(process.env.OPTIO_ARTIFACTS || join(ROOT, "test-artifacts", "browser"));
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const GATEWAY = "http://127.0.0.1:8080";
const STACK_RELAY = "http://127.0.0.1:8090";

const id = randomBytes(3).toString("hex");
const PREFIX = `optio-browser-${id}:`;
const QUEUE = `optio.browser.${id}`;

let stack, ownRelay, ownRelayPort, chromium, events;
const latencies = []; // ms from an event in Redis to the page showing it
const pageErrors = []; // uncaught errors of the dashboard's script

async function startOwnRelay() {
  return start("relay", join(BIN, "optio-relay"), {
    RELAY_ADDR: `127.0.0.1:${ownRelayPort}`, OPTIO_PREFIX: PREFIX, OPTIO_GATEWAY_URL: GATEWAY, REDIS_URL,
  }, join(ARTIFACTS, "own-relay.log"), () => httpOK(`http://127.0.0.1:${ownRelayPort}/healthz`), 20_000);
}

before(async () => {
  const stateDir = ensureDir(ARTIFACTS, `stack-${id}`);
  stack = await start("optio-up", join(BIN, "optio-up"), {
    OPTIO_PREFIX: PREFIX,
    OPTIO_QUEUE: QUEUE,
    OPTIO_BIN_DIR: BIN,
    OPTIO_STATE_DIR: stateDir,
    OPTIO_STACK_FILE: join(ROOT, "stack.yml"),
    OPTIO_SERVICES_SCRIPT: join(ROOT, "scripts", "services.sh"),
    OPTIO_LOCK_WAIT: "10m",
    REDIS_URL,
  }, join(stateDir, "optio-up.log"),
  async () => (await httpOK(`${GATEWAY}/function/status`)) && (await httpOK(`${STACK_RELAY}/healthz`)),
  15 * 60_000, "Optio is up.");
  ownRelayPort = await freePort();
  ownRelay = await startOwnRelay();
  events = subscribe(REDIS_URL, PREFIX + "events");
  await events.ready;
  chromium = await launch();
});

after(async () => {
  await chromium?.close();
  events?.close();
  await ownRelay?.stop();
  await stack?.stop("SIGINT", 60_000);
  if (latencies.length) {
    const s = [...latencies].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    const summary = { changes: s.length, medianMs: q(0.5), p95Ms: q(0.95), worstMs: s[s.length - 1] };
    writeFileSync(join(ARTIFACTS, "latency.json"), JSON.stringify(summary, null, 2) + "\n");
    console.log(`latency from a counter change in Redis to the page: ${JSON.stringify(summary)}`);
    // Invariant 5: a change reaches an open dashboard within 1 second:
    // every change, so the worst is held to it (measured here: about
    // 100-280 ms at worst, most of it the relay's 100 ms send interval).
    assert.ok(summary.worstMs < 1000, `every change must show within 1 s: ${JSON.stringify(summary)}`);
  }
  assert.deepEqual(pageErrors, [], "the dashboard's script threw");
});

// ---- helpers -----------------------------------------------------------

async function api(method, path, body) {
  const res = await fetch(GATEWAY + path, {
    method, body: body && JSON.stringify(body), headers: body ? { "Content-Type": "application/json" } : {},
  });
  return { status: res.status, body: await res.json() };
}

async function stopAnyRun() {
  const s = await api("GET", "/function/status");
  if (s.body.state === "running") await api("POST", "/function/stop");
}

// open loads the dashboard at base, waits until it is live, and starts
// recording when the processed counter changes on screen.
async function open(base, { viewport } = {}) {
  const page = await chromium.context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(base + "/");
  await page.locator("#conn[data-conn=open]").waitFor();
  await page.evaluate(() => {
    window.__seen = [];
    const el = document.getElementById("processed");
    const runOf = () => (document.getElementById("run-id").textContent.match(/^Run (\S+),/) || [])[1] || "";
    const note = () => window.__seen.push({ at: Date.now(), run: runOf(), processed: Number(el.textContent.replace(/,/g, "")) });
    note();
    new MutationObserver(note).observe(el, { childList: true, characterData: true, subtree: true });
  });
  return { page, since: Date.now() };
}

// measure adds, for every change of processed published in Redis between
// since and until, the time until the page first showed it (or more).
async function measure({ page, since }, until = Date.now()) {
  const seen = await page.evaluate(() => window.__seen);
  const changes = new Map(); // "run/processed" -> first arrival
  for (const e of events.events) {
    if (e.at < since || e.at > until) continue;
    const key = `${e.run.id}/${e.run.processed}`;
    if (!changes.has(key)) changes.set(key, { run: e.run.id, processed: Number(e.run.processed), at: e.at });
  }
  let n = 0;
  for (const c of changes.values()) {
    const s = seen.find((x) => x.run === c.run && x.processed >= c.processed && x.at >= c.at - 50);
    if (s) { latencies.push(s.at - c.at); n++; }
  }
  return n;
}

const text = (page, sel) => page.locator(sel).textContent();
const num = async (page, sel) => Number((await text(page, sel)).replace(/[^\d]/g, ""));

async function counters(page) {
  return {
    state: await text(page, "#state"),
    enqueued: await num(page, "#enqueued"),
    processed: await num(page, "#processed"),
    failed: await num(page, "#failed"),
    cancelled: await num(page, "#cancelled"),
  };
}

async function waitFor(what, cond, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

// ---- tests -------------------------------------------------------------

describe("dashboard", () => {
  it("shows a message for bad input and starts nothing", async () => {
    await stopAnyRun();
    const before = (await api("GET", "/function/status")).body;
    const { page } = await open(STACK_RELAY);
    const posts = [];
    page.on("request", (r) => { if (r.method() === "POST") posts.push(r.url()); });
    const x = page.getByLabel("Total jobs (X)");
    const y = page.getByLabel("Jobs per minute (Y)");
    const start = page.getByRole("button", { name: "Start" });
    const cases = [
      [x, "0", "#x-error", "Must be at least 1."],
      [x, "10000001", "#x-error", "Must be at most 10,000,000."],
      [x, "abc", "#x-error", "“abc” is not a number."],
      [x, "", "#x-error", "Enter the number of total jobs."],
      [y, "1.5", "#y-error", "Use a whole number."],
      [y, "1000001", "#y-error", "Must be at most 1,000,000."],
    ];
    for (const [input, value, err, msg] of cases) {
      await input.fill(value);
      assert.equal(await text(page, err), msg, `message for ${value}`);
      assert.equal(await input.getAttribute("aria-invalid"), "true");
      assert.ok(await start.isDisabled(), `Start disabled for ${value}`);
      await input.press("Enter"); // submitting by keyboard starts nothing either
    }
    await x.fill("200");
    await y.fill("12000");
    assert.equal(await text(page, "#x-error"), "");
    assert.ok(await start.isEnabled());
    await sleep(500);
    assert.deepEqual(posts, [], "no request was sent");
    const now = (await api("GET", "/function/status")).body;
    assert.equal(now.runId, before.runId, "no run was started");
    await page.close();
  });

  it("starts x=200 y=12000 from the keyboard, reaches 100% and agrees with status", async () => {
    await stopAnyRun();
    const view = await open(STACK_RELAY);
    const { page } = view;
    await page.getByLabel("Total jobs (X)").focus();
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("200");
    await page.keyboard.press("Tab");
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("12000");
    await page.keyboard.press("Enter");
    await page.locator("#percent", { hasText: "100%" }).waitFor({ timeout: 60_000 });
    await page.locator("#state", { hasText: "completed" }).waitFor();
    await sleep(300);
    const status = (await api("GET", "/function/status")).body;
    assert.equal(status.state, "completed");
    assert.equal(status.xTotal, 200);
    assert.deepEqual(await counters(page), {
      state: status.state, enqueued: status.enqueued, processed: status.processed,
      failed: status.failed, cancelled: status.cancelled,
    });
    assert.equal(await text(page, "#progress-text"), "200 / 200");
    assert.equal(await text(page, "#rate-configured"), "12,000 / min");
    assert.match(await text(page, "#run-id"), new RegExp(`^Run ${status.runId},`));
    assert.equal(await page.locator("#bar").getAttribute("aria-valuenow"), "100");
    assert.match(await text(page, "#rate-measured"), /\/ min$/);
    assert.ok(await page.getByRole("button", { name: "Stop" }).isDisabled(), "Stop disabled once completed");
    await page.screenshot({ path: join(ARTIFACTS, "end-laptop.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(ARTIFACTS, "end-phone.png"), fullPage: true });
    const n = await measure(view);
    assert.ok(n > 0, "latency measured");
    await page.close();
  });

  it("stops in mid-run from the page; state and counters freeze", async () => {
    await stopAnyRun();
    const view = await open(STACK_RELAY);
    const { page } = view;
    await page.getByLabel("Total jobs (X)").fill("100000");
    await page.getByLabel("Jobs per minute (Y)").fill("600");
    await page.getByRole("button", { name: "Start" }).click();
    await waitFor("10 jobs processed on the page", async () => (await num(page, "#processed")) >= 10);
    assert.equal(await text(page, "#state"), "running");
    assert.notEqual(await text(page, "#eta"), "–", "ETA shown while running");
    await waitFor("process replicas shown", async () => /^[1-9]\d*$/.test(await text(page, "#replicas")));
    await page.screenshot({ path: join(ARTIFACTS, "mid-run.png"), fullPage: true });
    const stopAt = Date.now();
    await page.getByRole("button", { name: "Stop" }).click();
    await page.locator("#state", { hasText: "stopped" }).waitFor();
    await measure(view, stopAt);
    // Jobs already queued are counted cancelled: let that settle, then
    // nothing may move any more.
    let last = await counters(page);
    await waitFor("counters to settle", async () => {
      await sleep(1000);
      const now = await counters(page);
      const same = JSON.stringify(now) === JSON.stringify(last);
      last = now;
      return same;
    });
    await sleep(3000);
    assert.deepEqual(await counters(page), last, "counters frozen after stop");
    const status = (await api("GET", "/function/status")).body;
    assert.deepEqual(last, {
      state: "stopped", enqueued: status.enqueued, processed: status.processed,
      failed: status.failed, cancelled: status.cancelled,
    });
    assert.ok(last.processed < 100000);
    assert.ok(await page.getByRole("button", { name: "Stop" }).isDisabled());
    assert.ok(await page.getByRole("button", { name: "Start" }).isEnabled());
    await page.screenshot({ path: join(ARTIFACTS, "stopped.png"), fullPage: true });
    await page.close();
  });

  it("shows the API's refusal (409) when a run is already running", async () => {
    await stopAnyRun();
    const started = await api("POST", "/function/run", { x: 100000, y: 600 });
    assert.equal(started.status, 201);
    // A page whose live view is cut off does not know a run is running, so
    // its Start is enabled; the gateway's answer must be shown.
    const page = await chromium.context.newPage();
    await page.routeWebSocket(/\/ws$/, () => {});
    await page.goto(STACK_RELAY + "/");
    await page.getByRole("button", { name: "Start" }).click();
    const alert = page.getByRole("alert").filter({ hasText: "Refused (409)" });
    await alert.waitFor();
    assert.match(await alert.textContent(), /running/i);
    assert.equal(await text(page, "#state"), "running", "the running run from the 409 answer is shown");
    await page.close();
    await api("POST", "/function/stop");
  });

  it("asks for the API token when run answers 401, then sends it", async () => {
    await stopAnyRun();
    const page = await chromium.context.newPage();
    const auth = [];
    // A gateway whose run needs a token (OPTIO_API_TOKEN); the right token
    // gets a 409, so no run is started by this test.
    await page.route("**/function/run", (route) => {
      const header = route.request().headers()["authorization"] || "";
      auth.push(header);
      const ok = header === "Bearer tok-e2e";
      return route.fulfill({
        status: ok ? 409 : 401, contentType: "application/json",
        body: JSON.stringify({ error: ok ? "a run is running (test)" : "this call needs an API token" }),
      });
    });
    let asked = "";
    page.on("dialog", (d) => { asked = d.message(); d.accept("tok-e2e"); });
    await page.goto(STACK_RELAY + "/");
    await page.getByLabel("Total jobs (X)").fill("5");
    await page.getByLabel("Jobs per minute (Y)").fill("600");
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("alert").filter({ hasText: "Refused (409)" }).waitFor();
    assert.match(asked, /token/i, "the page asked for the token");
    assert.deepEqual(auth, ["", "Bearer tok-e2e"], "sent again with the token");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("optio-api-token")), "tok-e2e");
    await page.close();
  });

  it("reconnects after a relay restart in mid-run and catches up", async () => {
    await stopAnyRun();
    const base = `http://127.0.0.1:${ownRelayPort}`;
    const view = await open(base);
    const { page } = view;
    await page.getByLabel("Total jobs (X)").fill("5000");
    await page.getByLabel("Jobs per minute (Y)").fill("1200");
    await page.getByRole("button", { name: "Start" }).click();
    await waitFor("10 jobs processed on the page", async () => (await num(page, "#processed")) >= 10);
    const killedAt = Date.now();
    await measure(view, killedAt);
    await ownRelay.stop();
    await page.locator("#conn[data-conn=closed]").waitFor();
    assert.match(await text(page, "#conn-text"), /reconnecting/i);
    const frozen = await num(page, "#processed");
    await sleep(2000); // jobs go on while the relay is down
    ownRelay = await startOwnRelay();
    await page.locator("#conn[data-conn=open]").waitFor({ timeout: 30_000 });
    const status = (await api("GET", "/function/status")).body;
    await waitFor("the page to catch up with status", async () => (await num(page, "#processed")) >= status.processed);
    assert.ok(status.processed > frozen, `jobs were processed while the relay was down (${frozen} -> ${status.processed})`);
    // The new relay rebuilt the run's throughput from Redis: rate and chart go on.
    assert.match(await text(page, "#rate-measured"), /\/ min$/);
    assert.match(await page.locator("#chart").getAttribute("aria-label"), /peak [1-9]/);
    await page.getByRole("button", { name: "Stop" }).click();
    await page.locator("#state", { hasText: "stopped" }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "after-relay-restart.png"), fullPage: true });
    await page.close();
  });
});
