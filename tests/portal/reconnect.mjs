// The event stream drops mid-call and comes back: what changed meanwhile shows up (the
// server replays what was missed, or sends a fresh snapshot), and a full page reload
// mid-call shows the call as it is.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, WAIT_MS } from './lib.mjs';

await scenario('reconnect', async (t) => {
  const page = await t.newPage({ label: 'user' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  await waitForCommand('call_started');
  const line = await page.waitForSelector('#lines li[data-direction="out"]', { timeout: WAIT_MS });
  const callId = await line.getAttribute('data-call-id');
  await lineIn(page, callId, 'active', 20000);

  // Offline: the stream stops; the test changes the call meanwhile.
  await page.evaluate(() => window.tspsPortal.live.stop());
  await page.waitForSelector('#connection[data-state="stopped"]');
  emit({ event: 'offline', call_id: callId });
  await waitForCommand('changed');
  t.check('while offline the screen still shows the old state', Boolean(await page.$(`#lines li[data-call-id="${callId}"][data-state="active"]`)));
  await page.evaluate(() => window.tspsPortal.live.start());
  await waitLive(page);
  await lineIn(page, callId, 'held');
  t.check('after reconnecting the line shows what happened meanwhile', true);
  await t.shot(page, 'after-reconnect');

  await page.reload();
  await page.waitForSelector('main[data-page="home"] h1');
  await lineIn(page, callId, 'held');
  t.check('after a reload the call shows as it is', true);
  await t.shot(page, 'after-reload');
  emit({ event: 'checked' });
  await waitForCommand('done');
});
