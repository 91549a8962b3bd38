// Checks clock.mjs against another process's wall clock: python3 writes
// time.time_ns() every millisecond for 5 s, this process reads each line as it arrives.
// The smallest (receive - written) must be a few microseconds and never negative;
// a negative value means the offset estimate is wrong by at least that much.
//   node clock-check.mjs   ->  {"clock_check_min_delay_us": 2.4, "n": 5000}
import { spawn } from 'node:child_process';
import { nowMs, startClock } from './clock.mjs';

await startClock();
const py = spawn('python3', ['-c',
  'import time, sys\nfor i in range(5000):\n  sys.stdout.write(str(time.time_ns()) + "\\n"); sys.stdout.flush(); time.sleep(0.001)']);
let min = Infinity;
let n = 0;
let buf = '';
py.stdout.on('data', (d) => {
  const t = nowMs();
  buf += d;
  const lines = buf.split('\n');
  buf = lines.pop();
  for (const l of lines) {
    const written = Number(BigInt(l) / 1000n) / 1000;
    min = Math.min(min, t - written);
    n++;
  }
});
py.on('close', () => console.log(JSON.stringify({ clock_check_min_delay_us: Math.round(min * 10000) / 10, n })));
