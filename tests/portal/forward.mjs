// Forwarding a ringing call from the incoming-call window: the user types a colleague's
// extension and presses Enter; the call leaves the user's screen (the test checks that
// the user's phone was cancelled and the colleague's phone answered).

import { scenario, credentials, login, waitLive, waitForCommand, emit, WAIT_MS } from './lib.mjs';

await scenario('forward', async (t) => {
  const page = await t.newPage({ label: 'forwarder' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  await waitForCommand('call_started');
  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const callId = await card.getAttribute('data-call-id');
  const target = process.env.PORTAL_FORWARD_TO || '1003';
  // Keyboard only: focus is on Answer; the forward field is the next form control.
  await page.focus(`#incoming [data-call-id="${callId}"] input[data-target-for="forward"]`);
  await page.keyboard.type(target);
  await t.shot(page, 'forward-entry');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#incoming [data-call-id="${callId}"]`, { state: 'detached', timeout: WAIT_MS });
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: WAIT_MS });
  t.check('the forwarded call left the screen', true);
  await t.shot(page, 'after-forward');
  emit({ event: 'forwarded' });
});
