// Colleagues' status lights and the attendant's view: Bob covers for Alice (he is her
// attendant). His directory shows Alice's light turn ringing, then on the phone, then
// available again, and his "calls for people you cover" panel shows her ringing call.
// Everything arrives pushed: no reload, no polling.

import { scenario, credentials, login, waitLive, emit, WAIT_MS } from './lib.mjs';

const light = (ext) => `#directory li[data-extension="${ext}"]`;

await scenario('presence', async (t) => {
  const page = await t.newPage({ label: 'attendant' });
  await login(page, credentials());
  await waitLive(page);
  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: WAIT_MS });
  await page.waitForSelector(`${light('1003')}[data-presence="available"]`, { timeout: WAIT_MS });
  t.check('colleagues show as available', true);
  t.check('the light has a spoken label',
    (await page.getAttribute(`${light('1001')} .dot`, 'aria-label')) === 'available');
  await t.shot(page, 'available');
  emit({ event: 'ready' });

  await page.waitForSelector(`${light('1001')}[data-presence="ringing"]`, { timeout: WAIT_MS });
  const covered = await page.waitForSelector('#covered:not([hidden]) [data-watched-call-id][data-state="ringing"]', { timeout: WAIT_MS });
  const text = await covered.textContent();
  t.check('the covered call names Alice and the caller', text.includes('Alice') && text.includes('1003'), text);
  await t.shot(page, 'alice-ringing');

  await page.waitForSelector(`${light('1001')}[data-presence="busy"]`, { timeout: 15000 });
  t.check('Alice shows on the phone once she answers', true);
  await page.waitForSelector('#covered', { state: 'hidden', timeout: WAIT_MS });
  t.check('the answered call leaves the covered panel', true);
  await t.shot(page, 'alice-busy');

  await page.waitForSelector(`${light('1001')}[data-presence="available"]`, { timeout: 15000 });
  t.check('Alice is available again after the call', true);
  emit({ event: 'ended' });
});
