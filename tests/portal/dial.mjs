// Click-to-dial from the directory: the user's chosen phone rings first, then the
// colleague's; the browser shows the outgoing line from dialing to connected; the
// user hangs up in the browser.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineAction, WAIT_MS } from './lib.mjs';

await scenario('dial', async (t) => {
  const page = await t.newPage({ label: 'caller' });
  await login(page, credentials());
  await waitLive(page);
  const callee = process.env.PORTAL_CALLEE || '1002';
  // The phones register before this step: the picker lists them once the stream says so.
  emit({ event: 'ready' });
  await waitForCommand('phones_ready');
  await page.waitForFunction(() => !document.querySelector('#device-picker').disabled, null, { timeout: WAIT_MS });
  await t.shot(page, 'before-dial');

  await page.click(`#directory button[data-dial="${callee}"]`);
  const line = await page.waitForSelector('#lines li[data-direction="out"]', { timeout: WAIT_MS });
  const callId = await line.getAttribute('data-call-id');
  t.check('the outgoing call shows', Boolean(callId));
  t.check('it names the callee', (await line.textContent()).includes(callee), await line.textContent());
  emit({ event: 'dialing', call_id: callId });
  await page.waitForSelector(`#lines li[data-call-id="${callId}"][data-state="active"]`, { timeout: 20000 });
  t.check('connected', true);
  await t.shot(page, 'connected');
  emit({ event: 'connected' });
  await waitForCommand('release');
  await lineAction(page, callId, 'release');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached' });
  t.check('hung up', true);
  emit({ event: 'released' });
});
