// WebSocket load client for tsps's live event push (load-tests/run.sh, phase `ws`).
//
//   node client.mjs list --base http://127.0.0.1:8190 --token T > targets.json
//   node client.mjs run --base ws://127.0.0.1:8190 --token T --targets targets.json \
//        --sessions 10000 [--open-rate 500] [--max-pending 200] [--max-seconds 3600]
//
// `list` writes every user of every tenant as {tenant, user, domain, extension}.
// `run` opens one WebSocket per chosen user, at most --open-rate new sessions per
// second and --max-pending handshakes at a time. Users are chosen evenly: every
// stride-th extension of each tenant (stride = users / sessions), so a subset still
// contains the callees of its callers when load-tests/run.sh pairs extension i with
// i + users_per_tenant/2.
//
// For every message it records the delay (receive time - the message's `at`, both from
// this machine's wall clock, to the microsecond: see clock.mjs), checks that `seq` is
// consecutive per session, and counts resyncs (a snapshot after the first one),
// duplicates, errors and closes. Lines are followed per session (call_id from `line` to `line_ended`) so that
// calls whose end never arrived show up as open lines.
//
// Control on stdin, one command per line (output: JSON lines on stdout):
//   mark LABEL   summary of the window since the previous mark, then a new window
//   quit         summary of the last window and of the whole run, close, exit
// Stdin closing counts as quit. Events: {"event":"opened",...} once every session has
// opened and received its first snapshot (or failed). Bounded by --max-seconds.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { nowMs, startClock } from './clock.mjs';

function args(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      out[a.slice(2)] = argv[i + 1];
      i++;
    } else {
      out._.push(a);
    }
  }
  return out;
}

const opt = args(process.argv.slice(2));
const mode = opt._[0];

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// ---------- list ----------
async function list() {
  const base = opt.base;
  const headers = { authorization: `Bearer ${opt.token}` };
  const get = async (path) => {
    const r = await fetch(`${base}/api/v1${path}`, { headers, signal: AbortSignal.timeout(30000) });
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    return r.json();
  };
  const out = [];
  for (const t of await get('/tenants')) {
    for (const u of await get(`/tenants/${t.id}/users`)) {
      out.push({ tenant: t.id, user: u.id, domain: t.domain, extension: u.extension });
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

// `at` as milliseconds since the epoch, keeping the sub-millisecond digits that
// Date.parse drops ("2026-11-21T10:15:02.114123456Z").
function atMs(s) {
  if (typeof s !== 'string' || s.length < 20) return NaN;
  const whole = Date.parse(s.slice(0, 19) + 'Z');
  if (s[19] !== '.') return whole;
  let end = 20;
  while (end < s.length && s.charCodeAt(end) >= 48 && s.charCodeAt(end) <= 57) end++;
  const frac = s.slice(20, end);
  if (s[end] !== 'Z') return NaN; // tsps writes UTC as Z
  return whole + Number(frac) / 10 ** (frac.length - 3);
}

// ---------- statistics ----------
class Window {
  constructor() {
    this.started = nowMs();
    this.delays = [];
    this.messages = 0;
    this.bytes = 0;
    this.types = {};
    this.gaps = 0;
    this.missing = 0;
    this.dups = 0;
    this.resyncs = 0;
    this.badAt = 0;
    this.errors = 0;
    this.closes = 0;
    this.lineEnded = 0;
    this.linesStarted = 0;
    this.cpu = process.cpuUsage();
    loop.reset();
  }
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1));
  return Math.round(sorted[i] * 1000) / 1000;
}

function summary(w, label) {
  const d = Float64Array.from(w.delays).sort();
  const secs = (nowMs() - w.started) / 1000;
  const cpu = process.cpuUsage(w.cpu);
  let openLines = 0;
  for (const s of sessions) openLines += s.lines.size;
  return {
    label,
    seconds: Math.round(secs * 10) / 10,
    sessions_open: sessions.filter((s) => s.open).length,
    sessions_wanted: sessions.length,
    messages: w.messages,
    msgs_per_s: Math.round((w.messages / secs) * 10) / 10,
    avg_bytes: w.messages ? Math.round(w.bytes / w.messages) : 0,
    types: w.types,
    delay_ms: {
      n: d.length,
      p50: pct(d, 0.5),
      p90: pct(d, 0.9),
      p99: pct(d, 0.99),
      p999: pct(d, 0.999),
      max: d.length ? Math.round(d[d.length - 1] * 1000) / 1000 : null,
      min: d.length ? Math.round(d[0] * 1000) / 1000 : null,
    },
    gaps: w.gaps,
    missing_seqs: w.missing,
    dups: w.dups,
    resyncs: w.resyncs,
    bad_at: w.badAt,
    errors: w.errors,
    closes: w.closes,
    lines_started: w.linesStarted,
    line_ended: w.lineEnded,
    open_lines: openLines,
    client: {
      cpu_pct: Math.round(((cpu.user + cpu.system) / 1000 / (secs * 1000)) * 1000) / 10,
      loop_delay_p99_ms: Math.round(loop.percentile(99) / 1e4) / 100,
      loop_delay_max_ms: Math.round(loop.max / 1e4) / 100,
      rss_kb: Math.round(process.memoryUsage.rss() / 1024),
    },
  };
}

const loop = monitorEventLoopDelay({ resolution: 1 });

// ---------- run ----------
const sessions = [];
let win;
let total;

function onMessage(s, data) {
  const t = nowMs();
  const text = data.toString();
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    win.errors++;
    total.errors++;
    return;
  }
  for (const w of [win, total]) {
    w.messages++;
    w.bytes += text.length;
    w.types[m.type] = (w.types[m.type] || 0) + 1;
  }
  if (m.type === 'snapshot') {
    if (s.seq >= 0) {
      win.resyncs++;
      total.resyncs++;
      s.lines.clear();
    } else {
      s.ready = true;
      snapshotsSeen++;
      maybeOpened();
    }
    s.seq = m.seq;
    for (const l of m.data?.lines ?? []) s.lines.add(l.call_id);
    return; // a snapshot is made on demand: its `at` is not an event's moment
  }
  if (s.seq < 0) {
    win.errors++; // the first message must be a snapshot
    total.errors++;
  } else if (m.seq <= s.seq) {
    win.dups++;
    total.dups++;
  } else if (m.seq !== s.seq + 1) {
    win.gaps++;
    total.gaps++;
    win.missing += m.seq - s.seq - 1;
    total.missing += m.seq - s.seq - 1;
  }
  s.seq = Math.max(s.seq, m.seq);
  const at = atMs(m.at);
  if (Number.isFinite(at)) {
    const d = t - at;
    win.delays.push(d);
    total.delays.push(d);
  } else {
    win.badAt++;
    total.badAt++;
  }
  if (m.type === 'line') {
    if (!s.lines.has(m.data.call_id)) {
      s.lines.add(m.data.call_id);
      win.linesStarted++;
      total.linesStarted++;
    }
  } else if (m.type === 'line_ended') {
    s.lines.delete(m.data.call_id);
    win.lineEnded++;
    total.lineEnded++;
  }
}

let opened = false;
let snapshotsSeen = 0;
let failed = 0;
let openStarted = 0;
function maybeOpened() {
  if (opened || snapshotsSeen + failed < sessions.length) return;
  opened = true;
  emit({
    event: 'opened',
    sessions: snapshotsSeen,
    failed,
    seconds: Math.round((nowMs() - openStarted) / 100) / 10,
    client_rss_kb: Math.round(process.memoryUsage.rss() / 1024),
  });
}

function connect(s, base, token) {
  const ws = new WebSocket(`${base}/api/v1/tenants/${s.tenant}/users/${s.user}/events/ws`, {
    headers: { authorization: `Bearer ${token}` },
    perMessageDeflate: false,
    handshakeTimeout: 15000,
  });
  s.ws = ws;
  ws.on('open', () => {
    s.open = true;
    pending--;
  });
  ws.on('message', (data) => onMessage(s, data));
  ws.on('unexpected-response', (_req, res) => {
    if (failed < 5) emit({ event: 'refused', status: res.statusCode, user: s.user });
    ws.terminate();
  });
  ws.on('error', (e) => {
    win.errors++;
    total.errors++;
    if (total.errors <= 5) emit({ event: 'error', message: String(e.message || e), user: s.user });
  });
  ws.on('close', () => {
    if (!s.open) {
      pending--;
      failed++;
      maybeOpened();
    } else if (!quitting) {
      win.closes++;
      total.closes++;
    }
    s.open = false;
  });
}

let pending = 0;
let quitting = false;

function choose(targets, n) {
  const byTenant = new Map();
  for (const t of targets) {
    if (!byTenant.has(t.domain)) byTenant.set(t.domain, []);
    byTenant.get(t.domain).push(t);
  }
  const tenants = [...byTenant.keys()].sort();
  for (const d of tenants) byTenant.get(d).sort((a, b) => Number(a.extension) - Number(b.extension));
  const stride = Math.max(1, Math.floor(targets.length / n));
  const out = [];
  // round-robin over tenants so that a partial open is still spread over them
  const per = Math.max(...tenants.map((d) => byTenant.get(d).length));
  for (let i = 0; i < per && out.length < n; i += stride) {
    for (const d of tenants) {
      const u = byTenant.get(d)[i];
      if (u && out.length < n) out.push(u);
    }
  }
  return out;
}

async function run() {
  const base = opt.base;
  const token = opt.token;
  const n = Number(opt.sessions);
  const rate = Number(opt['open-rate'] ?? 500);
  const maxPending = Number(opt['max-pending'] ?? 200);
  const maxSeconds = Number(opt['max-seconds'] ?? 3600);
  const targets = JSON.parse(readFileSync(opt.targets, 'utf8'));
  await startClock();
  loop.enable();
  win = new Window();
  total = new Window();
  for (const t of choose(targets, n)) {
    sessions.push({ tenant: t.tenant, user: t.user, seq: -1, open: false, ready: false, lines: new Set(), ws: null });
  }
  const domains = new Set(choose(targets, n).map((t) => t.domain));
  emit({ event: 'start', sessions: sessions.length, tenants: domains.size, open_rate: rate });

  // open at most `rate` per second, in 10-ms ticks, with at most maxPending handshakes
  openStarted = nowMs();
  let next = 0;
  const opener = setInterval(() => {
    const allowed = Math.floor(((nowMs() - openStarted) / 1000) * rate) + 1;
    while (next < sessions.length && next < allowed && pending < maxPending) {
      pending++;
      connect(sessions[next++], base, token);
    }
    if (next >= sessions.length) clearInterval(opener);
  }, 10);
  if (sessions.length === 0) maybeOpened();

  const quit = () => {
    if (quitting) return;
    quitting = true;
    emit(summary(win, 'last'));
    emit(summary(total, 'total'));
    for (const s of sessions) if (s.ws) s.ws.close(1000);
    const deadline = setTimeout(() => {
      for (const s of sessions) if (s.ws) s.ws.terminate();
      process.exit(0);
    }, 5000);
    const check = setInterval(() => {
      if (sessions.every((s) => !s.ws || s.ws.readyState === WebSocket.CLOSED)) {
        clearTimeout(deadline);
        clearInterval(check);
        process.exit(0);
      }
    }, 50);
  };
  setTimeout(() => {
    emit({ event: 'max-seconds reached' });
    quit();
  }, maxSeconds * 1000).unref();
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, label] = line.trim().split(/\s+/);
    if (cmd === 'mark') {
      emit(summary(win, label || 'window'));
      win = new Window();
    } else if (cmd === 'quit') {
      quit();
    }
  });
  rl.on('close', quit);
}

if (mode === 'list') {
  list().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
} else if (mode === 'run') {
  run();
} else {
  console.error('usage: client.mjs list|run --base URL --token T ...');
  process.exit(2);
}
