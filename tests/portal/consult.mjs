// Consultative transfer from the browser: the user has a held call and an active one;
// the active line's Transfer form offers to join it with the other call; after the
// join both lines leave the user's screen.

import { scenario, credentials, login, waitLive, waitForCommand, emit, lineIn, lineAction } from './lib.mjs';

await scenario('consult', async (t) => {
  const page = await t.newPage({ label: 'transferor' });
  await login(page, credentials());
  await waitLive(page);
  emit({ event: 'ready' });
  const { first, second } = await waitForCommand('calls_up');
  await lineIn(page, first, 'held', 20000);
  await lineIn(page, second, 'active', 20000);
  t.check('both lines show', (await page.$$('#lines li[data-call-id]')).length === 2);

  await lineAction(page, second, 'transfer');
  const join = `#lines li[data-call-id="${second}"] button[data-join-with="${first}"]`;
  await page.waitForSelector(join);
  await t.shot(page, 'consult-entry');
  await page.click(join);
  for (const call of [second, first]) {
    await page.waitForSelector(`#lines li[data-call-id="${call}"]`, { state: 'detached', timeout: 20000 });
  }
  t.check('both lines left the screen', true);
  emit({ event: 'joined' });
  await t.shot(page, 'after-join');
});
