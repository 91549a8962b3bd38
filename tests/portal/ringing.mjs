// The live view of a call the user takes on the phone itself: the incoming-call window
// appears within a second of the caller's INVITE, with who calls; when the phone
// answers, the window goes and the line turns active; when the caller hangs up, the
// line goes; the call then shows in the history with its routing decision.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, settled, WAIT_MS } from './lib.mjs';

const RING_WITHIN_MS = Number(process.env.PORTAL_RING_WITHIN_MS || '1000');

await scenario('ringing', async (t) => {
  const page = await t.newPage({ label: 'callee' });
  const transport = process.env.PORTAL_EVENTS || 'ws';
  if (transport === 'sse') await page.addInitScript(() => localStorage.setItem('tsps.events', 'sse'));
  await login(page, credentials());
  await waitLive(page);
  const used = await page.evaluate(() => (window.tspsPortal.live.useSse ? 'sse' : 'ws'));
  t.check(`the stream runs over ${transport}`, used === transport, used);
  emit({ event: 'ready' });
  const started = await waitForCommand('call_started');

  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const latency = Date.now() - started.at;
  t.data.ring_latency_ms = latency;
  t.check(`rings in the browser within ${RING_WITHIN_MS} ms`, latency <= RING_WITHIN_MS, latency);
  const callId = await card.getAttribute('data-call-id');
  const text = await card.textContent();
  t.check('the window names the caller', text.includes('Alice') && text.includes('1001'), text);
  t.check('the window offers answer and reject', Boolean(await card.$('[data-action="answer"]')) && Boolean(await card.$('[data-action="reject"]')));
  t.check('focus moved into the window', await page.evaluate(() => Boolean(document.activeElement.closest('#incoming'))));
  t.check('the region is announced assertively', await page.getAttribute('#incoming', 'aria-live') === 'assertive');
  const ringing = await lineIn(page, callId, 'ringing');
  t.check('the home page lists the ringing line', Boolean(ringing));
  await t.shot(page, 'ringing');

  // The phone answers by itself after a few seconds.
  await lineIn(page, callId, 'active', 15000);
  await page.waitForSelector(`#incoming [data-call-id="${callId}"]`, { state: 'detached' });
  const active = await page.$eval(`#lines li[data-call-id="${callId}"]`, (li) => [...li.querySelectorAll('button')].map((b) => b.dataset.action));
  t.check('an active line offers hold, transfer and hang up', ['hold', 'transfer', 'release'].every((a) => active.includes(a)), active);
  t.check('focus went back where it was', await page.evaluate(() => !document.activeElement.closest('#incoming')));
  await t.shot(page, 'active');

  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: 15000 });
  t.check('the ended call leaves the screen', await page.isVisible('#no-lines'));
  emit({ event: 'ended' });

  // The call record is written just after the call ends: search until it shows.
  await page.click('#nav a[data-page="history"]');
  const until = Date.now() + WAIT_MS;
  let rows = 0;
  while (Date.now() < until) {
    await page.click('form[role="search"] button[type="submit"]');
    await settled(page, '#history-status');
    rows = (await page.$$('#history-table tbody tr')).length;
    if (rows > 0) break;
    await page.waitForTimeout(200);
  }
  t.check('the call is in the history', rows === 1, rows);
  const row = rows ? await page.textContent('#history-table tbody tr') : '';
  t.check('as an answered incoming call from 1001', /Incoming/.test(row) && /1001/.test(row) && /answered/.test(row), row);
  await t.shot(page, 'history');
});
