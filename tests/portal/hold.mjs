// Hold, resume and hang up from the browser on a call the user placed from a phone: the
// outgoing line appears, turns active when answered; Hold makes it held (the test checks
// the other phone got the a=sendonly re-INVITE), Resume active again (a=sendrecv), Hang
// up removes it (both phones get a BYE).

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, WAIT_MS } from './lib.mjs';

await scenario('hold', async (t) => {
  const page = await t.newPage({ label: 'caller' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  await waitForCommand('call_started');

  const line = await page.waitForSelector('#lines li[data-direction="out"]', { timeout: WAIT_MS });
  const callId = await line.getAttribute('data-call-id');
  await lineIn(page, callId, 'active', 20000);
  t.check('the placed call shows as active', true);
  await t.shot(page, 'active');
  const counted = () => page.$eval(`#lines li[data-call-id="${callId}"] .elapsed`, (e) => e.dataset.since);
  const answered = await counted();

  await lineAction(page, callId, 'hold');
  await lineIn(page, callId, 'held');
  t.check('held', (await page.$$eval(`#lines li[data-call-id="${callId}"] button`, (b) => b.map((x) => x.dataset.action))).includes('resume'));
  t.check('focus stays on the line (now on Resume)', await page.evaluate(() => Boolean(document.activeElement.closest('#lines'))));
  await t.shot(page, 'held');
  emit({ event: 'held', call_id: callId });
  await waitForCommand('resume');

  await lineAction(page, callId, 'resume');
  await lineIn(page, callId, 'active');
  t.check('resumed', true);
  t.check('the call timer still counts from the answer, not from the resume', (await counted()) === answered);
  emit({ event: 'resumed' });
  await waitForCommand('release');

  await lineAction(page, callId, 'release');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: WAIT_MS });
  t.check('hung up: the line is gone', true);
  emit({ event: 'released' });
});
