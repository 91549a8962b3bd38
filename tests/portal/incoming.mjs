// A call to the logged-in user, handled in the browser: it rings in the incoming-call
// window within a second of the caller's INVITE, with the caller's name and number;
// "answer on" a chosen phone; the line turns active; hold and resume (the test checks
// the phones got the re-INVITEs); hang up. The test drives the SIPp phones and says
// when the call started; this side says when each step is visible.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, WAIT_MS } from './lib.mjs';

const RING_WITHIN_MS = Number(process.env.PORTAL_RING_WITHIN_MS || '1000');

await scenario('incoming', async (t) => {
  const page = await t.newPage({ label: 'callee' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });

  const started = await waitForCommand('call_started');
  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const latency = Date.now() - started.at;
  t.data.ring_latency_ms = latency;
  t.check(`rings in the browser within ${RING_WITHIN_MS} ms`, latency <= RING_WITHIN_MS, latency);
  const callId = await card.getAttribute('data-call-id');
  t.data.call_id = callId;
  const text = await card.textContent();
  t.check('the window names the caller', text.includes(process.env.PORTAL_CALLER_NAME || 'Alice'), text);
  t.check('the window shows the number', text.includes(process.env.PORTAL_CALLER_NUMBER || '1001'), text);
  t.check('focus moved to Answer', await page.evaluate(() => document.activeElement.dataset.action) === 'answer');
  t.check('the ringing line is on the home page', Boolean(await lineIn(page, callId, 'ringing')));
  await t.shot(page, 'incoming-window');

  const device = process.env.PORTAL_ANSWER_DEVICE;
  if (device) {
    const value = await page.$eval(`#incoming [data-call-id="${callId}"] select[data-answer-device]`,
      (sel, name) => [...sel.options].find((o) => o.textContent.startsWith(name))?.value, device);
    t.check(`device ${device} is offered`, Boolean(value));
    await page.selectOption(`#incoming [data-call-id="${callId}"] select[data-answer-device]`, value);
  }
  await page.click(`#incoming [data-call-id="${callId}"] [data-action="answer"]`);
  await lineIn(page, callId, 'active', 20000);
  await page.waitForSelector(`#incoming [data-call-id="${callId}"]`, { state: 'detached' });
  t.check('answered: the line is active and the window gone', true);
  emit({ event: 'answered', call_id: callId });
  await t.shot(page, 'active');

  await lineAction(page, callId, 'hold');
  await lineIn(page, callId, 'held');
  t.check('hold: the line shows held', true);
  emit({ event: 'held' });
  await t.shot(page, 'held');
  await waitForCommand('resume');

  await lineAction(page, callId, 'resume');
  await lineIn(page, callId, 'active');
  t.check('resume: the line is active again', true);
  emit({ event: 'resumed' });
  await waitForCommand('release');

  await lineAction(page, callId, 'release');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached' });
  t.check('hang up: the line is gone', true);
  emit({ event: 'released' });
  await t.shot(page, 'after-call');
});
