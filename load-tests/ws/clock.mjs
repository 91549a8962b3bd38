// Wall-clock time in milliseconds with microsecond digits, for comparing with tsps's
// `at` (chrono's Utc::now(), CLOCK_REALTIME).
//
// Node's Date.now() is the wall clock in whole milliseconds; process.hrtime is a
// monotonic clock in nanoseconds. Their offset is estimated as the largest
// (Date.now() - hrtime) with hrtime read after Date.now(): Date.now() truncates and the
// later read only lowers the difference, so every estimate is a lower bound that is
// tight when taken right after a millisecond boundary. A 1.5-ms loop every 200 ms in a
// worker thread (so the event loop measuring delays never stalls), the maximum over the
// last 12 s: on the test VM a stall of ~200 us often hid the boundary of a single loop,
// while the offset itself drifted < 1 us in 20 s.

import { Worker } from 'node:worker_threads';

const shared = new Float64Array(new SharedArrayBuffer(8));

const source = `
const { workerData, parentPort } = require('node:worker_threads');
const out = new Float64Array(workerData);
const recent = [];
function estimate() {
  let best = -Infinity;
  const end = Number(process.hrtime.bigint()) / 1e6 + 1.5;
  for (;;) {
    const wall = Date.now();
    const mono = Number(process.hrtime.bigint()) / 1e6;
    if (wall - mono > best) best = wall - mono;
    if (mono > end) break;
  }
  recent.push(best);
  if (recent.length > 60) recent.shift();
  out[0] = Math.max(...recent);
}
for (let i = 0; i < 20; i++) estimate();
parentPort.postMessage('ready');
setInterval(estimate, 200);
`;

/** Starts the estimator; resolves once the first 20 estimates are in. */
export function startClock() {
  const w = new Worker(source, { eval: true, workerData: shared.buffer });
  w.unref();
  return new Promise((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', reject);
  });
}

/** Wall-clock milliseconds since the epoch, with sub-millisecond digits. */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6 + shared[0];
}

/** The same instant as an RFC 3339 UTC string with microseconds, as tsps writes `at`. */
export function isoMicros(ms = nowMs()) {
  const whole = Math.floor(ms);
  const micros = Math.floor((ms - whole) * 1000);
  return new Date(whole).toISOString().slice(0, 23) + String(micros).padStart(3, '0') + 'Z';
}
