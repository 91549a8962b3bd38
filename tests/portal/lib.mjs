// Shared by the portal scenarios: a headless Chromium from Debian's package, a page
// that records console errors, uncaught exceptions and failed requests, screenshots
// into the artifacts directory, and the JSON report the Rust test reads.
//
// Protocol with tests/portal.rs: every stdout line is one JSON object. `{"event": ...}`
// lines tell progress (e.g. "ready" when the Rust side may start a call); stdin lines
// are commands from the Rust side (`{"cmd": "call_started", "at": <ms since epoch>}`);
// the last line is `{"result": {...}}`. The exit code is 0 only when every check passed.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`environment variable ${name} is not set`);
  }
  return v;
};

export const BASE = () => env('TSPS_URL');
const ARTIFACTS = () => env('PORTAL_ARTIFACTS');
/** Every wait is bounded by this unless a step says otherwise. */
export const WAIT_MS = Number(env('PORTAL_WAIT_MS', '10000'));

export function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const stdinLines = [];
const stdinWaiters = [];
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch (_) { return; }
  const i = stdinWaiters.findIndex((w) => w.cmd === msg.cmd);
  if (i >= 0) stdinWaiters.splice(i, 1)[0].resolve(msg);
  else stdinLines.push(msg);
});

/** Waits for the Rust side's command `cmd` (bounded by `timeoutMs`). */
export function waitForCommand(cmd, timeoutMs = 60000) {
  const i = stdinLines.findIndex((m) => m.cmd === cmd);
  if (i >= 0) return Promise.resolve(stdinLines.splice(i, 1)[0]);
  return new Promise((resolve, reject) => {
    const w = { cmd, resolve };
    stdinWaiters.push(w);
    setTimeout(() => {
      const j = stdinWaiters.indexOf(w);
      if (j >= 0) { stdinWaiters.splice(j, 1); reject(new Error(`no "${cmd}" from the test within ${timeoutMs} ms`)); }
    }, timeoutMs).unref();
  });
}

/**
 * Runs `body(t)` with a fresh browser; t has newPage(), shot(page, name), check(name,
 * ok, detail), data (free-form results). Prints the result line and exits.
 */
export async function scenario(name, body) {
  const dir = ARTIFACTS();
  mkdirSync(dir, { recursive: true });
  const result = { scenario: name, ok: true, checks: [], screenshots: [], console_errors: [], page_errors: [], failed_requests: [], data: {} };
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const pages = [];
  const allowedConsole = [];
  let shots = 0;
  const t = {
    result,
    data: result.data,
    async newPage(options = {}) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      const label = options.label || `page${pages.length + 1}`;
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        // A failed fetch is logged by Chromium as a console error; those are judged
        // from `failed_requests` instead, where the URL and status are known.
        if (m.text().startsWith('Failed to load resource')) return;
        if (allowedConsole.some((re) => re.test(m.text()))) return;
        result.console_errors.push({ page: label, text: m.text() });
      });
      page.on('pageerror', (e) => result.page_errors.push({ page: label, text: String(e && e.stack || e) }));
      page.on('response', (r) => {
        if (r.status() >= 400) {
          result.failed_requests.push({ page: label, method: r.request().method(), url: r.url().replace(BASE(), ''), status: r.status() });
        }
      });
      page.on('requestfailed', (r) => {
        const failure = r.failure() ? r.failure().errorText : 'failed';
        // Leaving a page aborts its pending requests and sockets: not a fault.
        if (failure === 'net::ERR_ABORTED') return;
        result.failed_requests.push({ page: label, method: r.method(), url: r.url().replace(BASE(), ''), status: 0, error: failure });
      });
      pages.push(page);
      return page;
    },
    async shot(page, what) {
      shots += 1;
      const file = join(dir, `${String(shots).padStart(2, '0')}-${what}.png`);
      await page.screenshot({ path: file, fullPage: true });
      result.screenshots.push(file);
      return file;
    },
    /** A console error the scenario provokes on purpose (matched by `re`). */
    allowConsole(re) {
      allowedConsole.push(re);
    },
    check(what, ok, detail) {
      result.checks.push({ what, ok: Boolean(ok), detail: detail === undefined ? null : detail });
      if (!ok) result.ok = false;
      return Boolean(ok);
    },
  };
  try {
    await body(t);
  } catch (e) {
    result.ok = false;
    result.error = String(e && e.stack || e);
    for (const page of pages) {
      try { await t.shot(page, 'failure'); } catch (_) { /* the page may be gone */ }
    }
  } finally {
    await browser.close().catch(() => {});
  }
  if (result.page_errors.length || result.console_errors.length) result.ok = false;
  emit({ result });
  rl.close();
  process.exit(result.ok ? 0 : 1);
}

/** Logs in through the login screen and waits for the home page. */
export async function login(page, { domain, login: user, password }) {
  await page.goto(`${BASE()}/portal/`);
  await page.waitForSelector('#login-title');
  await page.fill('input[name="domain"]', domain);
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', password);
  await page.click('form.login button[type="submit"]');
  await page.waitForSelector('main[data-page="home"] h1');
}

/** Credentials from the environment: TSPS_DOMAIN, TSPS_LOGIN, TSPS_PASSWORD (prefix). */
export function credentials(prefix = 'TSPS') {
  return { domain: env(`${prefix}_DOMAIN`), login: env(`${prefix}_LOGIN`), password: env(`${prefix}_PASSWORD`) };
}

/** Waits until the event stream is connected (the top bar says Live). */
export async function waitLive(page, timeout = WAIT_MS) {
  await page.waitForSelector('#connection[data-state="live"]', { timeout });
}

/** Labels of form controls that have none (accessibility check). */
export async function unlabelledControls(page) {
  return page.$$eval('input, select, textarea', (els) => els
    .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.outerHTML.slice(0, 120)));
}

/** Waits until the status element `selector` no longer says it is loading. */
export async function settled(page, selector, timeout = WAIT_MS) {
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.textContent.trim() !== '' && !el.textContent.includes('Loading');
  }, selector, { timeout });
}

/** The line card of the home page for `callId` in `state` (waits for it). */
export async function lineIn(page, callId, state, timeout = WAIT_MS) {
  return page.waitForSelector(`#lines li[data-call-id="${callId}"][data-state="${state}"]`, { timeout });
}

/** Clicks the `action` button of a line on the home page. */
export async function lineAction(page, callId, action) {
  await page.click(`#lines li[data-call-id="${callId}"] button[data-action="${action}"]`);
}
