// Blind transfer from the browser: the user answers an incoming call, types a colleague's
// extension into the line's Transfer field; the colleague's phone rings and the line
// leaves the user's screen.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, WAIT_MS } from './lib.mjs';

await scenario('transfer', async (t) => {
  const page = await t.newPage({ label: 'transferor' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  await waitForCommand('call_started');
  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const callId = await card.getAttribute('data-call-id');
  await page.waitForSelector(`#incoming [data-call-id="${callId}"] select[data-answer-device] option`, { state: "attached" });
  await page.click(`#incoming [data-call-id="${callId}"] [data-action="answer"]`);
  await lineIn(page, callId, 'active', 20000);
  emit({ event: 'answered', call_id: callId });

  const target = process.env.PORTAL_TRANSFER_TO || '1003';
  await lineAction(page, callId, 'transfer');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"] input[data-target-for="transfer"]`);
  t.check('the transfer field has focus', await page.evaluate(() => document.activeElement.dataset.targetFor) === 'transfer');
  await page.keyboard.type(target);
  await t.shot(page, 'transfer-entry');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: 20000 });
  t.check('the transferred call left the screen', true);
  emit({ event: 'transferred' });
  await t.shot(page, 'after-transfer');
});
