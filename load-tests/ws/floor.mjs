// The floor for tsps's event push delay (load-tests/run.sh, phase `ws`): a plain
// WebSocket server in Node that does nothing but send messages shaped like tsps's
// (same envelope, same size) to the same number of sessions of the same client, at the
// message rate tsps produced. What client.mjs measures against it is the cost of the
// client, the WebSocket framing and loopback TCP on this machine at that load: the
// part of tsps's delay that is not tsps's.
//
//   node floor.mjs --port 8391 [--size 450] [--max-seconds 3600]
//
// Accepts any path; every session first gets a snapshot (seq 0). Control on stdin:
//   rate N     send N messages per second in total (round-robin over the sessions,
//              in pairs, like a call's two parties), 0 = stop
//   quit       close and exit (also on stdin EOF or after --max-seconds)
// Prints {"event":"listening"} when ready and {"event":"sent",...} on each rate change.

import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { WebSocketServer } from 'ws';
import { isoMicros, startClock } from './clock.mjs';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const port = Number(opt.port ?? 8391);
const size = Number(opt.size ?? 450);
const maxSeconds = Number(opt['max-seconds'] ?? 3600);

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

await startClock();

const conns = [];
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('listening', () => emit({ event: 'listening', port }));
wss.on('connection', (ws) => {
  const c = { ws, seq: 0 };
  conns.push(c);
  ws.send(JSON.stringify({ v: 1, seq: 0, resume: 'f:0', type: 'snapshot', at: isoMicros(), data: { lines: [] } }));
  ws.on('close', () => {
    const i = conns.indexOf(c);
    if (i >= 0) conns.splice(i, 1);
  });
  ws.on('error', () => {});
});

// a message of `size` bytes (tsps's average at the matched load), in tsps's envelope
function send(c) {
  c.seq++;
  const m = { v: 1, seq: c.seq, resume: `f:${c.seq}`, type: 'status', at: isoMicros(), data: { hook: 'busy', pad: '' } };
  const bare = JSON.stringify(m).length;
  m.data.pad = 'x'.repeat(Math.max(0, size - bare));
  c.ws.send(JSON.stringify(m));
}

let rate = 0;
let sent = 0;
let since = performance.now();
let owed = 0;
let next = 0;
setInterval(() => {
  const now = performance.now();
  owed += ((now - since) / 1000) * rate;
  since = now;
  // pairs, like the two parties of a call, to neighbouring sessions
  while (owed >= 2 && conns.length > 0) {
    for (let k = 0; k < 2; k++) {
      send(conns[next % conns.length]);
      next++;
      sent++;
    }
    owed -= 2;
  }
}, 1);

const quit = () => {
  emit({ event: 'sent', messages: sent });
  for (const c of conns) c.ws.terminate();
  wss.close();
  process.exit(0);
};
setTimeout(quit, maxSeconds * 1000).unref();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, v] = line.trim().split(/\s+/);
  if (cmd === 'rate') {
    emit({ event: 'sent', messages: sent, new_rate: Number(v) });
    rate = Number(v);
    since = performance.now();
    owed = 0;
  } else if (cmd === 'quit') {
    quit();
  }
});
rl.on('close', quit);
