// Portal watchers of the presence load test (load-tests/presence/phase.sh): WebSocket
// sessions that watch colleagues (PUT .../watch, docs/events.md) and log every
// `presence` message with its receive time.
//
//   node watch.mjs --base ws://127.0.0.1:8290 --http http://127.0.0.1:8290 --token T \
//        --targets targets.json --sessions 100 --watch 100 --log-dir DIR [--max-seconds 3600]
//
// targets.json: the list written by ../ws/client.mjs list ({tenant, user, domain,
// extension}). Sessions are spread evenly over the tenants; session s of a tenant (by
// extension order) watches the `--watch` users that follow it, starting at extension
// index s * watch + 1, so that with sessions * watch = users every user of a tenant is
// watched by one session.
//
// Per `presence` message one line in DIR/portal-<LABEL>.log:
//   rx_ms at_ms watched_user hook presence session
// (rx from this machine's wall clock with microsecond digits, ../ws/clock.mjs; `at` the
// server's time of the change). Seq gaps, resyncs, errors and closes are counted as in
// ../ws/client.mjs.
//
// Control on stdin, one command per line (JSON lines on stdout):
//   mark LABEL   summary of the window since the previous mark; its log is portal-LABEL.log
//   quit         close and exit (stdin closing counts as quit)
// Events: {"event":"watching",...} once every session has its snapshot and its watch list.

import { createRequire } from 'node:module';
import { createWriteStream, readFileSync, renameSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { nowMs, startClock } from '../ws/clock.mjs';

// the ws package is installed once, in ../ws (npm ci there)
const WebSocket = createRequire(new URL('../ws/package.json', import.meta.url))('ws');

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}
const opt = args(process.argv.slice(2));

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// `at` as milliseconds since the epoch with the sub-millisecond digits (as client.mjs)
function atMs(s) {
  if (typeof s !== 'string' || s.length < 20) return NaN;
  const whole = Date.parse(s.slice(0, 19) + 'Z');
  if (s[19] !== '.') return whole;
  let end = 20;
  while (end < s.length && s.charCodeAt(end) >= 48 && s.charCodeAt(end) <= 57) end++;
  const frac = s.slice(20, end);
  if (s[end] !== 'Z') return NaN;
  return whole + Number(frac) / 10 ** (frac.length - 3);
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1));
  return Math.round(sorted[i] * 1000) / 1000;
}

const logDir = opt['log-dir'] ?? '.';
let opened = 0;
class Window {
  constructor() {
    opened++;
    this.path = join(logDir, `portal-open-${opened}.part`);
    this.out = createWriteStream(this.path);
    this.started = nowMs();
    this.presence = 0;
    this.other = 0;
    this.delays = [];
    this.gaps = 0;
    this.resyncs = 0;
    this.errors = 0;
    this.closes = 0;
  }
}

const sessions = [];
let win;
let quitting = false;

function onMessage(s, data) {
  const t = nowMs();
  let m;
  try {
    m = JSON.parse(data.toString());
  } catch {
    win.errors++;
    return;
  }
  if (m.type === 'snapshot') {
    if (s.seq >= 0) win.resyncs++;
    s.seq = m.seq;
    if (!s.ready) {
      s.ready = true;
      setWatch(s);
    }
    return;
  }
  if (s.seq >= 0 && m.seq !== s.seq + 1 && m.seq > s.seq) win.gaps++;
  s.seq = Math.max(s.seq, m.seq);
  if (m.type !== 'presence') {
    win.other++;
    return;
  }
  const at = atMs(m.at);
  win.presence++;
  win.delays.push(t - at);
  win.out.write(`${t.toFixed(3)} ${at.toFixed(3)} ${m.data.user_id} ${m.data.hook} ${m.data.presence} ${s.idx}\n`);
}

let watching = 0;
let watchFailed = 0;
async function setWatch(s) {
  try {
    const r = await fetch(`${opt.http}/api/v1/tenants/${s.tenant}/users/${s.user}/watch`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${opt.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ users: s.watch }),
      signal: AbortSignal.timeout(30000),
    });
    if (!r.ok) throw new Error(`PUT watch: ${r.status}`);
    const body = await r.json();
    s.watched = body.watched.length;
    watching++;
  } catch (e) {
    watchFailed++;
    if (watchFailed <= 5) emit({ event: 'error', message: String(e.message || e) });
  }
  if (watching + watchFailed === sessions.length) {
    emit({
      event: 'watching',
      sessions: watching,
      failed: watchFailed,
      watched: sessions.reduce((a, x) => a + (x.watched || 0), 0),
      seconds: Math.round((nowMs() - t0) / 100) / 10,
    });
  }
}

function connect(s) {
  const ws = new WebSocket(`${opt.base}/api/v1/tenants/${s.tenant}/users/${s.user}/events/ws`, {
    headers: { authorization: `Bearer ${opt.token}` },
    perMessageDeflate: false,
    handshakeTimeout: 15000,
  });
  s.ws = ws;
  ws.on('message', (d) => onMessage(s, d));
  ws.on('error', () => win.errors++);
  ws.on('close', () => {
    if (!quitting) win.closes++;
  });
}

function mark(label) {
  const w = win;
  win = new Window();
  const d = Float64Array.from(w.delays).sort();
  w.out.end(() => renameSync(w.path, join(logDir, `portal-${label}.log`)));
  emit({
    event: 'mark',
    label,
    seconds: Math.round((nowMs() - w.started) / 100) / 10,
    presence: w.presence,
    other: w.other,
    at_delay_ms: { n: d.length, p50: pct(d, 0.5), p90: pct(d, 0.9), p99: pct(d, 0.99), p999: pct(d, 0.999), max: d.length ? d[d.length - 1] : null },
    gaps: w.gaps,
    resyncs: w.resyncs,
    errors: w.errors,
    closes: w.closes,
    sessions_open: sessions.filter((s) => s.ws && s.ws.readyState === WebSocket.OPEN).length,
  });
}

let t0 = 0;
async function main() {
  await startClock();
  win = new Window();
  const targets = JSON.parse(readFileSync(opt.targets, 'utf8'));
  const n = Number(opt.sessions);
  const per = Number(opt.watch);
  const byTenant = new Map();
  for (const t of targets) {
    if (!byTenant.has(t.domain)) byTenant.set(t.domain, []);
    byTenant.get(t.domain).push(t);
  }
  const tenants = [...byTenant.keys()].sort();
  for (const d of tenants) byTenant.get(d).sort((a, b) => Number(a.extension) - Number(b.extension));
  const perTenant = Math.ceil(n / tenants.length);
  for (let s = 0; s < perTenant; s++) {
    for (const d of tenants) {
      if (sessions.length >= n) break;
      const list = byTenant.get(d);
      const me = list[(s * per) % list.length];
      const watch = [];
      for (let j = 1; j <= per; j++) watch.push(list[(s * per + j) % list.length].user);
      sessions.push({ idx: sessions.length, tenant: me.tenant, user: me.user, watch, seq: -1, ready: false, ws: null });
    }
  }
  t0 = nowMs();
  // at most 50 handshakes started per 100 ms
  for (let i = 0; i < sessions.length; i++) {
    connect(sessions[i]);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 100));
  }
  if (sessions.length === 0) emit({ event: 'watching', sessions: 0, failed: 0, watched: 0, seconds: 0 });
}

function quit() {
  if (quitting) return;
  quitting = true;
  mark('end');
  for (const s of sessions) if (s.ws) s.ws.close(1000);
  setTimeout(() => process.exit(0), 1000);
}

setTimeout(() => {
  emit({ event: 'max-seconds reached' });
  quit();
}, Number(opt['max-seconds'] ?? 3600) * 1000).unref();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, label] = line.trim().split(/\s+/);
  if (cmd === 'mark') mark(label || 'window');
  else if (cmd === 'quit') quit();
});
rl.on('close', quit);
main().catch((e) => {
  emit({ event: 'error', message: String(e.message || e) });
  process.exit(1);
});
