// tsps restarts while the home page is open: the event stream reconnects on its own,
// and the directory's status lights come back without the user changing page (the
// restarted server has forgotten the page's watch list: the page sends it again).

import { scenario, credentials, login, waitLive, waitForCommand, emit, WAIT_MS } from './lib.mjs';

const light = (ext) => `#directory li[data-extension="${ext}"]`;

await scenario('restart', async (t) => {
  const page = await t.newPage({ label: 'user' });
  await login(page, credentials());
  await waitLive(page);
  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: WAIT_MS });
  t.check('before the restart Alice shows available', true);
  await page.evaluate(() => { window.tspsSamePage = true; });
  emit({ event: 'ready' });
  await waitForCommand('restarted');

  // The reconnect backs off up to 15 s (and falls back to SSE after three failures).
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 40000 });
  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: WAIT_MS });
  t.check('after the restart Alice shows available again',
    (await page.getAttribute(`${light('1001')} .dot`, 'aria-label')) === 'available');
  t.check('on the same page, not reloaded', await page.evaluate(() => window.tspsSamePage === true && document.querySelector('main[data-page="home"]') !== null));
  await t.shot(page, 'after-restart');
  emit({ event: 'checked' });
});
