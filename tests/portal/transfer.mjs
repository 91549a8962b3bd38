// Blind transfer from the browser: the user answers an incoming call, types a colleague's
// extension into the line's Transfer field; the colleague's phone rings and the line
// leaves the user's screen. The caller's portal names the colleague from then on, and
// the call is in the colleague's recent calls and history once it ends.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction, WAIT_MS } from './lib.mjs';

await scenario('transfer', async (t) => {
  const page = await t.newPage({ label: 'transferor' });
  await login(page, credentials());
  await waitLive(page);
  // The caller (Alice) and the target (Carol) follow in their own portals.
  const caller = await t.newPage({ label: 'caller' });
  await login(caller, credentials('PEER'));
  await waitLive(caller);
  const target = await t.newPage({ label: 'target' });
  await login(target, credentials('THIRD'));
  await waitLive(target);
  // Every name the caller's line shows, as it changes (the call may be short).
  await caller.evaluate(() => {
    window.peersSeen = [];
    const note = () => {
      for (const el of document.querySelectorAll('#lines li .peer')) {
        if (!window.peersSeen.includes(el.textContent)) window.peersSeen.push(el.textContent);
      }
    };
    new MutationObserver(note).observe(document.getElementById('lines'), { subtree: true, childList: true, characterData: true });
  });
  emit({ event: 'ready' });
  await waitForCommand('call_started');
  const card = await page.waitForSelector('#incoming [data-call-id]', { timeout: WAIT_MS });
  const callId = await card.getAttribute('data-call-id');
  await page.waitForSelector(`#incoming [data-call-id="${callId}"] select[data-answer-device] option`, { state: "attached" });
  await page.click(`#incoming [data-call-id="${callId}"] [data-action="answer"]`);
  await lineIn(page, callId, 'active', 20000);
  emit({ event: 'answered', call_id: callId });

  const to = process.env.PORTAL_TRANSFER_TO || '1003';
  await lineAction(page, callId, 'transfer');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"] input[data-target-for="transfer"]`);
  t.check('the transfer field has focus', await page.evaluate(() => document.activeElement.dataset.targetFor) === 'transfer');
  await page.keyboard.type(to);
  await t.shot(page, 'transfer-entry');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: 20000 });
  t.check('the transferred call left the screen', true);
  emit({ event: 'transferred' });
  await t.shot(page, 'after-transfer');

  // The call ends (the caller hangs up after talking to Carol).
  await caller.waitForSelector(`#lines li[data-call-id="${callId}"]`, { state: 'detached', timeout: 20000 });
  const seen = await caller.evaluate(() => window.peersSeen);
  t.check('the caller\'s line named Bob, then Carol', seen.some((p) => p.includes('Bob')) && seen.some((p) => p.includes('Carol')), seen);
  // Carol's recent calls reload a second after her line ends, and list the call.
  await target.waitForFunction(() => [...document.querySelectorAll('#recent li')].some((li) => li.textContent.includes('Alice')), null, { timeout: WAIT_MS });
  t.check('the call is in the target\'s recent calls, from Alice', true);
  await t.shot(target, 'target-recent');
  await target.goto(`${target.url().split('#')[0]}#/history`);
  const row = await target.waitForSelector(`tr[data-call-id="${callId}"]`, { timeout: WAIT_MS });
  t.check('and in her call history as incoming', (await row.getAttribute('data-direction')) === 'incoming');
  await t.shot(target, 'target-history');
  emit({ event: 'checked' });
});
